//! API Gateway HTTP API (payload format 2.0) on one side, domain results on the other.
//! Every handler goes through [`respond`], so every response has the same shape and headers.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::error::{InventoryError, RETRY_AFTER_SECONDS};
use crate::limits::{DEFAULT_PAGE_SIZE, MAX_BODY_BYTES, MAX_JSON_INTEGER, MAX_PAGE_SIZE};

pub type Request = ApiGatewayV2httpRequest;
pub type Response = ApiGatewayV2httpResponse;

/// API Gateway's id for the request (the one in its access logs); the Lambda request id otherwise.
pub fn request_id(request: &Request, lambda_request_id: &str) -> String {
    request.request_context.request_id.clone().unwrap_or_else(|| lambda_request_id.to_owned())
}

/// A path parameter the route guarantees; its absence means the route and the handler disagree.
pub fn path_param<'a>(request: &'a Request, name: &'static str) -> Result<&'a str, InventoryError> {
    request
        .path_parameters
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| InventoryError::internal(format!("route has no path parameter {name}")))
}

/// A request header's value; one that is not visible ASCII is refused.
pub fn header<'a>(request: &'a Request, name: &'static str) -> Result<Option<&'a str>, InventoryError> {
    request
        .headers
        .get(name)
        .map(|value| value.to_str().map_err(|_| InventoryError::invalid(name, format!("{name} must be plain ASCII"))))
        .transpose()
}

/// The request body as `T`: a JSON object of at most [`MAX_BODY_BYTES`], with errors that name the
/// offending field ("quantity: a whole number from 1 to 1000 expected").
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, InventoryError> {
    let raw = request.body.as_deref().unwrap_or_default();
    if raw.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(InventoryError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| InventoryError::invalid("body", "request body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(InventoryError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    // Every body this API takes is an object; serde would also read a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(InventoryError::invalid("body", "request body must be a JSON object"));
    }
    let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).map_err(|err| {
        // serde_json appends " at line L column C"; what went wrong says more to an API client.
        let message = err.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        InventoryError::invalid("body", format!("request body is not valid JSON: {message}"))
    })?;
    for (name, value) in fields.iter_mut() {
        // Optional fields are left out, never null: serde would take a null for "absent".
        if value.is_null() {
            return Err(InventoryError::invalid("body", format!("{name}: must not be null (leave the field out)")));
        }
        // JSON has one kind of number: 5.0 is the integer 5 (as JSON Schema's "integer" says).
        if let Some(whole) =
            value.as_f64().filter(|f| value.is_f64() && f.fract() == 0.0 && f.abs() <= MAX_JSON_INTEGER as f64)
        {
            *value = (whole as i64).into();
        }
    }
    let value: T = serde_path_to_error::deserialize(serde_json::Value::Object(fields)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        InventoryError::invalid(
            "body",
            if path == "." { format!("request body: {message}") } else { format!("{path}: {message}") },
        )
    })?;
    Ok(value)
}

/// Refuses query parameters the route does not take, so a typo is an error rather than ignored.
pub fn query_params<'a>(request: &'a Request, allowed: &[&'static str]) -> Result<QueryParams<'a>, InventoryError> {
    let params = &request.query_string_parameters;
    for (name, _) in params.iter() {
        if !allowed.contains(&name) {
            let expected = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
            return Err(InventoryError::invalid(
                "query",
                format!("unknown query parameter '{name}' (accepted: {expected})"),
            ));
        }
    }
    Ok(QueryParams(request))
}

pub struct QueryParams<'a>(&'a Request);

impl QueryParams<'_> {
    /// The parameter's value; a parameter given twice is refused rather than guessed at.
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, InventoryError> {
        match self.0.query_string_parameters.all(name) {
            None => Ok(None),
            Some(values) if values.len() == 1 => Ok(Some(values[0])),
            Some(_) => Err(InventoryError::invalid("query", format!("query parameter '{name}' given more than once"))),
        }
    }
}

/// The `limit` query parameter of a paginated route: 1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
pub fn page_limit(query: &QueryParams) -> Result<usize, InventoryError> {
    match query.single("limit")? {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(raw) => raw.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
            InventoryError::invalid("limit", format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"))
        }),
    }
}

/// Maps a handler's outcome to the HTTP response: success as JSON with its status, errors as
/// `{"error":{"code","message","request_id"}}`. Every response carries `x-request-id`.
pub fn respond<T: Serialize>(outcome: Result<(u16, T), InventoryError>, request_id: &str) -> Response {
    respond_with_text(outcome.and_then(|(status, body)| Ok((status, body_text(&body)?))), request_id)
}

/// A response body as JSON text.
pub fn body_text<T: Serialize>(body: &T) -> Result<String, InventoryError> {
    serde_json::to_string(body).map_err(|err| InventoryError::internal(format!("serialising the response: {err}")))
}

/// [`respond`] for a body already turned into JSON text.
pub fn respond_with_text(outcome: Result<(u16, String), InventoryError>, request_id: &str) -> Response {
    match outcome {
        Ok((status, text)) => json_response(status, text, request_id),
        Err(err) => error_response(&err, request_id),
    }
}

fn error_response(err: &InventoryError, request_id: &str) -> Response {
    match err {
        InventoryError::Internal { detail } | InventoryError::Unavailable { detail } => {
            tracing::error!(code = err.code(), detail = %detail, "request failed");
        }
        _ => tracing::info!(code = err.code(), reason = %err, "request refused"),
    }
    let mut error = json!({"code": err.code(), "message": err.to_string(), "request_id": request_id});
    if let Some((name, value)) = err.details() {
        error[name] = value;
    }
    let body = json!({ "error": error });
    let mut response = json_response(err.status(), body.to_string(), request_id);
    if matches!(err, InventoryError::Unavailable { .. }) {
        response.headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

fn json_response(status: u16, body: String, request_id: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Request ids come from API Gateway or Lambda (ASCII); a value HeaderValue refuses is skipped.
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    let mut response = Response::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &Response) -> serde_json::Value {
        match &response.body {
            Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn errors_have_the_documented_shape_and_status() {
        let response = respond::<()>(Err(InventoryError::invalid("quantity", "quantity must be positive")), "req-1");
        assert_eq!(response.status_code, 400);
        assert_eq!(
            body_json(&response),
            json!({"error": {"code": "INVALID_INPUT", "message": "quantity must be positive", "request_id": "req-1", "field": "quantity"}})
        );
        assert_eq!(response.headers["x-request-id"], "req-1");
        assert_eq!(response.headers[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let response = respond::<()>(Err(InventoryError::internal("table arn:aws:... exploded")), "req-2");
        assert_eq!(response.status_code, 500);
        let body = body_json(&response);
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("arn:aws"));
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let response = respond::<()>(Err(InventoryError::Unavailable { detail: "throttled".into() }), "r");
        assert_eq!(response.status_code, 503);
        assert_eq!(response.headers[RETRY_AFTER], "1");
    }

    fn with_body(body: &str) -> Request {
        let mut request = Request::default();
        request.body = Some(body.to_owned());
        request
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        quantity: u8,
    }

    #[test]
    fn body_errors_name_the_field() {
        let err = json_body::<Sample>(&with_body(r#"{"quantity": "three"}"#)).unwrap_err();
        assert_eq!(err.to_string(), "quantity: invalid type: string \"three\", expected u8");
        let err = json_body::<Sample>(&with_body(r#"{"quantity": 1, "extra": 2}"#)).unwrap_err();
        assert!(err.to_string().starts_with("extra: unknown field `extra`"), "{err}");
        let err = json_body::<Sample>(&with_body(r#"{"quantity": 1"#)).unwrap_err();
        assert!(err.to_string().starts_with("request body is not valid JSON"), "{err}");
        for not_an_object in ["", "  ", "[1]", "1", "\"quantity\"", "null"] {
            let err = json_body::<Sample>(&with_body(not_an_object)).unwrap_err();
            assert_eq!(err.to_string(), "request body must be a JSON object", "{not_an_object:?}");
        }
        let err = json_body::<Sample>(&with_body(r#"{"quantity": null}"#)).unwrap_err();
        assert_eq!(err.to_string(), "quantity: must not be null (leave the field out)");
        let err = json_body::<Sample>(&with_body(r#"{"quantity": 1} {}"#)).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        assert_eq!(json_body::<Sample>(&with_body(r#"{"quantity": 2.0}"#)).unwrap().quantity, 2);
        let err = json_body::<Sample>(&with_body(r#"{"quantity": 2.5}"#)).unwrap_err();
        assert!(err.to_string().starts_with("quantity: invalid type: floating point"), "{err}");

        #[derive(Debug, serde::Deserialize)]
        struct Version {
            version: i64,
        }
        // Found by the fuzzer: without exact float parsing this read as 3617223892746441.5 (400).
        let parsed = json_body::<Version>(&with_body(r#"{"version": 3617223892746442.0}"#)).unwrap();
        assert_eq!(parsed.version, 3_617_223_892_746_442);
        let largest = json_body::<Version>(&with_body(r#"{"version": 9007199254740991.0}"#)).unwrap();
        assert_eq!(largest.version, MAX_JSON_INTEGER);
        let err = json_body::<Version>(&with_body(r#"{"version": 9007199254740992.0}"#)).unwrap_err();
        assert!(err.to_string().starts_with("version: invalid type: floating point"), "{err}");
    }

    #[test]
    fn oversized_bodies_are_413() {
        let big = format!(r#"{{"quantity": 1, "pad": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(json_body::<Sample>(&with_body(&big)).unwrap_err().status(), 413);
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let mut request = with_body("eyJxdWFudGl0eSI6IDJ9"); // {"quantity": 2}
        request.is_base64_encoded = true;
        assert_eq!(json_body::<Sample>(&request).unwrap().quantity, 2);
    }

    #[test]
    fn unknown_query_parameters_are_refused() {
        let mut request = Request::default();
        request.query_string_parameters = [("warehouse", "main")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        let err = query_params(&request, &["warehouse_id"]).err().unwrap();
        assert_eq!(err.to_string(), "unknown query parameter 'warehouse' (accepted: warehouse_id)");
    }
}
