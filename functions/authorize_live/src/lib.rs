//! The live WebSocket API's `$connect` authorizer. A socket without a token is a shopper's (product
//! pages are public); one with `?token=<access token>` (browsers cannot set headers on a WebSocket) must
//! carry a valid token of our user pool, and is an admin's if its user is in the admin group. A bad
//! token is refused (403), never downgraded, so a page knows its sign-in is stale.

use serde::Deserialize;
use serde_json::{json, Value};
use shared::tokens::TokenVerifier;

/// The fields of API Gateway's REQUEST authorizer event that are used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    pub method_arn: String,
    #[serde(default)]
    pub query_string_parameters: Option<std::collections::HashMap<String, String>>,
}

/// The handler: the IAM policy for the connection, with who opened it as the context.
pub async fn handler(verifier: &TokenVerifier, event: &AuthorizerEvent) -> Value {
    let token = event.query_string_parameters.as_ref().and_then(|q| q.get("token")).filter(|t| !t.is_empty());
    let Some(token) = token else {
        return policy("shopper", "Allow", &event.method_arn, json!({"viewer": "shopper"}));
    };
    match verifier.verify(token).await {
        Ok(caller) if caller.is_admin() => {
            tracing::info!(user = caller.subject, "live connection of an admin");
            policy(&caller.subject, "Allow", &event.method_arn, json!({"viewer": "admin", "user": caller.subject}))
        }
        Ok(caller) => policy(&caller.subject, "Allow", &event.method_arn, json!({"viewer": "shopper"})),
        Err(refused) => {
            tracing::warn!(reason = %refused, "live connection refused: bad token");
            policy("refused", "Deny", &event.method_arn, json!({}))
        }
    }
}

fn policy(principal: &str, effect: &str, method_arn: &str, context: Value) -> Value {
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}]
        },
        "context": context
    })
}
