//! Cognito access tokens (what the pages hold and send to the HTTP API) verified in our own code —
//! only where API Gateway cannot do it for us: a WebSocket API's `$connect` takes a Lambda
//! authorizer, not a JWT one. The signature is checked against the user pool's published keys
//! (JWKS) by `jsonwebtoken`, with issuer and expiry; then `token_use` and `client_id` (an access
//! token names its app client there, not in `aud`), as API Gateway's JWT authorizer does.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::auth::Caller;

/// Why a token was refused (logged; the client learns only that it was).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRefused {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token is signed by a key the user pool does not publish (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("token is not valid: {0}")]
    Invalid(String),
    #[error("not an access token (token_use {0:?})")]
    NotAnAccessToken(String),
    #[error("token of another app client ({0:?})")]
    OtherClient(String),
}

#[derive(Debug, Deserialize)]
struct AccessTokenClaims {
    sub: String,
    token_use: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
}

/// Verifies the user pool's access tokens for one app client.
pub struct TokenVerifier {
    keys: std::sync::RwLock<JwkSet>,
    jwks_url: String,
    /// When the keys were last fetched: a token naming a key we do not have fetches them again (a
    /// rotation, or a failed fetch at init), at most once a minute.
    fetched: tokio::sync::Mutex<Option<std::time::Instant>>,
    validation: Validation,
    client_id: String,
}

/// Least time between two fetches of the keys.
const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl TokenVerifier {
    /// `issuer`: `https://cognito-idp.<region>.amazonaws.com/<pool id>`; `client_id`: our app client.
    /// The keys are fetched from `jwks_url` now; if that fails, the verifier still starts (a socket
    /// without a token needs no key) and fetches them when a token first asks for one.
    pub async fn new(jwks_url: &str, issuer: &str, client_id: &str) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false; // access tokens carry client_id instead, checked below
        validation.leeway = 30;
        let keys = fetch_keys(jwks_url).await.unwrap_or_else(|err| {
            tracing::error!(
                error = err,
                "the user pool's keys could not be fetched; admins' live sockets wait for them"
            );
            JwkSet { keys: Vec::new() }
        });
        Self {
            keys: std::sync::RwLock::new(keys),
            jwks_url: jwks_url.to_owned(),
            fetched: tokio::sync::Mutex::new(Some(std::time::Instant::now())),
            validation,
            client_id: client_id.to_owned(),
        }
    }

    /// A verifier with the given keys (tests).
    pub fn with_keys(keys: JwkSet, issuer: &str, client_id: &str) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 30;
        Self {
            keys: std::sync::RwLock::new(keys),
            jwks_url: String::new(),
            fetched: tokio::sync::Mutex::new(Some(std::time::Instant::now())),
            validation,
            client_id: client_id.to_owned(),
        }
    }

    /// The signed-in caller the token names, if it is a valid access token of our pool and app client.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenRefused> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| TokenRefused::Malformed(err.to_string()))?;
        let kid = header.kid.ok_or(TokenRefused::UnknownKey(None))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refetch().await;
                self.key(&kid).ok_or(TokenRefused::UnknownKey(Some(kid)))?
            }
        }
        .map_err(|err| TokenRefused::Invalid(err.to_string()))?;
        let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &self.validation)
            .map_err(|err| TokenRefused::Invalid(err.to_string()))?
            .claims;
        if claims.token_use != "access" {
            return Err(TokenRefused::NotAnAccessToken(claims.token_use));
        }
        if claims.client_id != self.client_id {
            return Err(TokenRefused::OtherClient(claims.client_id));
        }
        if claims.sub.is_empty() {
            return Err(TokenRefused::Invalid("empty sub".into()));
        }
        Ok(Caller { subject: claims.sub, username: claims.username, groups: claims.groups })
    }

    fn key(&self, kid: &str) -> Option<Result<DecodingKey, jsonwebtoken::errors::Error>> {
        let keys = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.find(kid).map(DecodingKey::from_jwk)
    }

    async fn refetch(&self) {
        let mut fetched = self.fetched.lock().await;
        if self.jwks_url.is_empty() || fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return;
        }
        *fetched = Some(std::time::Instant::now());
        match fetch_keys(&self.jwks_url).await {
            Ok(keys) => *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys,
            Err(err) => tracing::error!(error = err, "the user pool's keys could not be fetched"),
        }
    }
}

/// The user pool's keys (JWKS).
async fn fetch_keys(jwks_url: &str) -> Result<JwkSet, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|err| format!("building an HTTP client: {err}"))?;
    let response = client.get(jwks_url).send().await.map_err(|err| format!("fetching {jwks_url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("fetching {jwks_url}: HTTP {}", response.status()));
    }
    response.json::<JwkSet>().await.map_err(|err| format!("reading the keys at {jwks_url}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn garbage_and_unknown_keys_are_refused() {
        let verifier = TokenVerifier::with_keys(JwkSet { keys: Vec::new() }, "https://issuer", "client");
        assert!(matches!(verifier.verify("not a token").await, Err(TokenRefused::Malformed(_))));
        // A well-formed header naming a key the pool does not publish.
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
        );
        let token = format!("{header}.e30.c2ln");
        assert_eq!(verifier.verify(&token).await, Err(TokenRefused::UnknownKey(Some("k1".into()))));
    }
}
