//! Cognito access tokens (what the pages hold and send to the HTTP API) verified in our own code —
//! only where API Gateway cannot do it for us: a WebSocket API's `$connect` takes a Lambda
//! authorizer, not a JWT one. The signature is checked against the user pool's published keys
//! (JWKS) by `jsonwebtoken`, with issuer and expiry; then `token_use` and `client_id` (an access
//! token names its app client there, not in `aud`), as API Gateway's JWT authorizer does.

use futures::future::BoxFuture;
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
        let (keys, fetched) = match fetch_keys(jwks_url).await {
            Ok(keys) => (keys, Some(std::time::Instant::now())),
            Err(err) => {
                tracing::error!(
                    error = err,
                    "the user pool's keys could not be fetched; admins' live sockets wait for them"
                );
                (JwkSet { keys: Vec::new() }, None) // the first token fetches them at once
            }
        };
        Self::with_fetched_keys(keys, fetched, jwks_url, issuer, client_id)
    }

    /// A verifier with the given keys, which it never fetches again (tests).
    pub fn with_keys(keys: JwkSet, issuer: &str, client_id: &str) -> Self {
        Self::with_fetched_keys(keys, Some(std::time::Instant::now()), "", issuer, client_id)
    }

    fn with_fetched_keys(
        keys: JwkSet,
        fetched: Option<std::time::Instant>,
        jwks_url: &str,
        issuer: &str,
        client_id: &str,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false; // access tokens carry client_id instead, checked in verify
        validation.leeway = 30;
        Self {
            keys: std::sync::RwLock::new(keys),
            jwks_url: jwks_url.to_owned(),
            fetched: tokio::sync::Mutex::new(fetched),
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

/// The user pool's keys (JWKS). Boxed here, so reqwest's client is compiled in this crate and not
/// again in the authorizer's binary (see `entrypoint::Boxed`).
#[inline(never)]
fn fetch_keys(jwks_url: &str) -> BoxFuture<'_, Result<JwkSet, String>> {
    Box::pin(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|err| format!("building an HTTP client: {err}"))?;
        let response = client.get(jwks_url).send().await.map_err(|err| format!("fetching {jwks_url}: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("fetching {jwks_url}: HTTP {}", response.status()));
        }
        response.json::<JwkSet>().await.map_err(|err| format!("reading the keys at {jwks_url}: {err}"))
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    /// A throwaway RSA key made for these tests (PKCS#1 DER) and its public half as the pool's JWK.
    const TEST_KEY_DER: &str = "MIIEpAIBAAKCAQEAsRxGawoDBDiuB4pGF6q7YXoMlTCVp9h+U3fvofkwzOv1uywlzZ24tJfEfQsmH6nLpHTaR4YvgTezZvwyL3Ei0mTZQehUZGJzJzPXx5bVHVLT8BRPbL4pl98SJ8TOoFDmdx+mVHT+lD/YOZpylWOngRe9y0Nrj3BYeFolTD/BFVNghsILkhPWNw5uTWA3doWZqO1v0ovY2JAp8ELpxHdM7gRqf3YA1cj+BYeJUxJegBrpBMivBBVExwHk0XUlyp1e6hC+0RL/5uvdY5ffvnaWPdubNZbC6EFLEMHX+ZL1mcefk9AxynA7Cwq0bW+21vbs43nq/mAtnXP1rZXzZKL6pwIDAQABAoIBAFH6OvPnje7hx1exHnFs8s+THQjfFJ48nHhJDu+Ddp2baEHLFPJf2zMn/mg8hVhpkNtdxP0PNKTUYeM8v4PrE4mb6V3SymEumoteOTXmcF1izbuVww+b04e61l33AAb/ezVPPn9gKcf35z7+aKQSHOGpWg2f9sTNZP3MB/CLn/UcvA2qA8I0d/edRm48jfUKA+jGJ9qJ7llxA6glQikxl2c2FVo8Nv6UtYIPsQ4l+u2B6WRGfFFPmk2WfK6sqBPrIEhw9PjGtHTxf6mHa6alL1wBO2Ii+pkpET3mY73sZgnywhs9jNuuFVE9+uukigJ8zwa9/9lWfBtgJQnqLpcovbECgYEA9LCdIFUk01MnVLJ1WANYjCnlMF0tJUNr5YlGmkj7dSf33IfxuqQ5WHWzB4DnDlP2Nn9Z49t7bofNrFsUdhOn9Azo7WUKgtksNjtfVFuyRhUg1Nx3Q9ZScbikgKfc93AvQcQR1ECthZRdbu0cVz9IqaAegVs4DyaNiJfhcPZr61ECgYEAuUwAdTR76mC2d/J//ynsdHx4aaYXaXhlAgn8ZYFESEdb/heSk6aPm6XN33W5upZLHRT1vHagZb79CuS1mqQqv1thEPv/IJ4Uv8UY3cTh/m6Tfs0o0u8MS1iMUe/AVMnOrlA5tmFXYxkd8T4u+ljFn1fbE5AOT/HjHmAxMeeZGHcCgYEAhrsw6Xq4ejwRLgvNnRbKjPMMpaLIlvoW0R7TZ2TEQPAvBJk+OxzuDo1QdNM/Zp5Ith1Na6+QuX3BfCPykkmkczcgkobOUNowA/SROyv6b6h2mX6DlTDP2JpoygakHwMAol/JyWuLoD/fapLYxhmscuodofCOX5lE2W93zPGC3uECgYBLJ3VEFF5yCHnZmoSppIJgGJ/qEdCLGaa2NgCl1tEwE6lPHJZ5xmOWuKAQkzoaYJzklby5jM+vlNAjG/JAX3drF4/+CIdI3nUB9toIELOss4KlOmblbslowehfz0MN4LAwaR+PRlngOq63SwZYyaqV31dezt3PNQduKYuqdwnULwKBgQDFpaU3kL4q+Rl/uBWtO9JbK4/CvPkQc6uAtbfMw4LyUoZ8R73A2J8QxXiR9kBdnu9w04F3ZBPTf6K8upTgdH8v69W+Ik9np/51KsXZlx2hFB3pUJq7NV0gxT4pVWkVcxwBoKsqsRjo2OkTvKYiZepwuVqG+Ab7ux35gQWmV9T4aw==";
    const TEST_KEY_N: &str = "sRxGawoDBDiuB4pGF6q7YXoMlTCVp9h-U3fvofkwzOv1uywlzZ24tJfEfQsmH6nLpHTaR4YvgTezZvwyL3Ei0mTZQehUZGJzJzPXx5bVHVLT8BRPbL4pl98SJ8TOoFDmdx-mVHT-lD_YOZpylWOngRe9y0Nrj3BYeFolTD_BFVNghsILkhPWNw5uTWA3doWZqO1v0ovY2JAp8ELpxHdM7gRqf3YA1cj-BYeJUxJegBrpBMivBBVExwHk0XUlyp1e6hC-0RL_5uvdY5ffvnaWPdubNZbC6EFLEMHX-ZL1mcefk9AxynA7Cwq0bW-21vbs43nq_mAtnXP1rZXzZKL6pw";
    const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";

    fn verifier() -> TokenVerifier {
        let keys: JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": TEST_KEY_N, "e": "AQAB"}
        ]}))
        .unwrap();
        TokenVerifier::with_keys(keys, ISSUER, "our-client")
    }

    fn token(header: Header, claims: serde_json::Value) -> String {
        let der = base64::engine::general_purpose::STANDARD.decode(TEST_KEY_DER).unwrap();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(&der)).unwrap()
    }

    fn rs256() -> Header {
        Header { kid: Some("k1".into()), ..Header::new(Algorithm::RS256) }
    }

    fn claims(changes: serde_json::Value) -> serde_json::Value {
        let mut claims = json!({
            "sub": "user-1", "iss": ISSUER, "client_id": "our-client", "token_use": "access",
            "username": "ada", "cognito:groups": ["inventory-admins"],
            "exp": crate::time::now() + 600, "iat": crate::time::now()
        });
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    }

    #[tokio::test]
    async fn a_valid_access_token_names_its_user_and_groups() {
        let caller = verifier().verify(&token(rs256(), claims(json!({})))).await.unwrap();
        assert_eq!((caller.subject.as_str(), caller.is_admin()), ("user-1", true));
    }

    #[tokio::test]
    async fn every_other_token_is_refused() {
        let verifier = verifier();
        let refused = |changes| token(rs256(), claims(changes));
        let expired = refused(json!({"exp": crate::time::now() - 120}));
        assert!(matches!(verifier.verify(&expired).await, Err(TokenRefused::Invalid(_))));
        let other_pool = refused(json!({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"}));
        assert!(matches!(verifier.verify(&other_pool).await, Err(TokenRefused::Invalid(_))));
        let other_client = refused(json!({"client_id": "someone-elses-app"}));
        assert_eq!(
            verifier.verify(&other_client).await.unwrap_err(),
            TokenRefused::OtherClient("someone-elses-app".into())
        );
        let id_token = refused(json!({"token_use": "id"}));
        assert_eq!(verifier.verify(&id_token).await.unwrap_err(), TokenRefused::NotAnAccessToken("id".into()));

        // Signed with a shared secret under our key's id, or tampered with: not our pool's signature.
        let hs256 = jsonwebtoken::encode(
            &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
            &claims(json!({})),
            &EncodingKey::from_secret(TEST_KEY_N.as_bytes()),
        )
        .unwrap();
        assert!(matches!(verifier.verify(&hs256).await, Err(TokenRefused::Invalid(_))));
        let good = token(rs256(), claims(json!({})));
        let (head, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(json!({"sub": "someone-else"}))).unwrap());
        let forged = format!("{head}.{forged_body}.{signature}");
        assert!(matches!(verifier.verify(&forged).await, Err(TokenRefused::Invalid(_))));
        // "alg": "none", unsigned.
        let none_head = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        assert!(verifier.verify(&format!("{none_head}.{forged_body}.")).await.is_err());
    }

    #[tokio::test]
    async fn garbage_and_unknown_keys_are_refused() {
        let verifier = TokenVerifier::with_keys(JwkSet { keys: Vec::new() }, "https://issuer", "client");
        assert!(matches!(verifier.verify("not a token").await, Err(TokenRefused::Malformed(_))));
        // A well-formed header naming a key the pool does not publish.
        let header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        let token = format!("{header}.e30.c2ln");
        assert_eq!(verifier.verify(&token).await, Err(TokenRefused::UnknownKey(Some("k1".into()))));
    }
}
