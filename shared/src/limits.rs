//! Input limits, written once. The handlers, the OpenAPI spec and the frontend use these numbers.

/// Longest product or warehouse id accepted.
pub const MAX_ID_LEN: usize = 64;

/// Characters an id may contain besides ASCII letters and digits. Ids appear in URLs, DynamoDB
/// keys and e-mail subjects, so anything that needs escaping in one of them is refused.
pub const ID_PUNCTUATION: &[char] = &['-', '_', '.', ':'];

/// The warehouse a single-warehouse shop uses.
pub const DEFAULT_WAREHOUSE: &str = "default";
