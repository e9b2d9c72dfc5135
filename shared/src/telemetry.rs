//! Logging set-up shared by every function.

/// Structured logs: JSON when Lambda's `LoggingConfig.LogFormat` is JSON (the template sets it),
/// with the request id on every line through the runtime's per-invocation span.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
