//! Input limits and fixed policy numbers, written once. The handlers, the OpenAPI spec and the
//! frontend use these.

/// Longest product or warehouse id accepted.
pub const MAX_ID_LEN: usize = 64;

/// Characters an id may contain besides ASCII letters and digits. Ids appear in URLs, DynamoDB
/// keys and e-mail subjects, so anything that needs escaping in one of them is refused.
pub const ID_PUNCTUATION: &[char] = &['-', '_', '.', ':'];

/// The warehouse a single-warehouse shop uses, and the one an admin write without a warehouse means.
pub const DEFAULT_WAREHOUSE: &str = "default";

/// Most units one hold may take: a shopping cart, not a wholesale order.
pub const MAX_HOLD_QUANTITY: i64 = 1_000;

/// Most units one product may have in one warehouse, and the largest single adjustment.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// Most shards one product's stock in one warehouse may be split over (see `sharding`).
pub const MAX_SHARDS: u32 = 32;

/// Largest integer a JSON number carries exactly in every client (JavaScript's
/// `Number.MAX_SAFE_INTEGER`): the bound of an admin's `expected_version`, and of whole numbers
/// written with a fraction (`5.0`). Item versions count writes and stay far below it.
pub const MAX_JSON_INTEGER: i64 = (1 << 53) - 1;

/// Longest reason an admin may give for a change.
pub const MAX_REASON_LEN: usize = 200;

/// An Idempotency-Key is a client-generated random value (a UUID is 36 characters). Short keys are
/// refused: the key decides the reservation id, which is all a holder needs to release the hold.
pub const MIN_IDEMPOTENCY_KEY_LEN: usize = 16;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// A `Cart-Token` is a client-generated random secret (the product page makes 256 bits, base64url);
/// 22 base64url characters carry 128 bits, the least accepted.
pub const MIN_CART_TOKEN_LEN: usize = 22;
pub const MAX_CART_TOKEN_LEN: usize = 128;

/// Most ACTIVE holds one cart may have at once.
pub const MAX_HOLDS_PER_CART: i64 = 20;

/// Most units of one product one cart may hold at once, for an item whose admin set no
/// `max_per_cart` of its own (the most they may set is a hold's cap).
pub const DEFAULT_MAX_PER_CART: i64 = 20;

/// Largest request body accepted; every valid body is far smaller.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// Threshold of an item an admin creates without giving one.
pub const DEFAULT_THRESHOLD: i64 = 5;

/// How long committed, released and expired holds are kept for audit before DynamoDB TTL removes them.
pub const ENDED_HOLD_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

/// The Cognito group whose members may manage stock.
pub const ADMIN_GROUP: &str = "inventory-admins";

/// Admin list page size: default and most.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages check input with the same numbers before sending it (frontend/src/limits.ts).
    #[test]
    fn the_frontend_uses_these_limits() {
        let frontend = include_str!("../../frontend/src/limits.ts");
        let declared = |name: &str| {
            frontend
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export const {name} = ")))
                .map(|value| value.trim_end_matches(';').to_owned())
                .unwrap_or_else(|| panic!("frontend/src/limits.ts declares no {name}"))
        };
        assert_eq!(declared("MAX_ID_LEN"), MAX_ID_LEN.to_string());
        assert_eq!(declared("MAX_HOLD_QUANTITY"), MAX_HOLD_QUANTITY.to_string());
        assert_eq!(declared("MAX_STOCK"), MAX_STOCK.to_string());
        assert_eq!(declared("MAX_SHARDS"), MAX_SHARDS.to_string());
        assert_eq!(declared("MAX_REASON_LEN"), MAX_REASON_LEN.to_string());
        let punctuation: String = ID_PUNCTUATION.iter().collect();
        let pattern = declared("ID_PATTERN");
        for mark in punctuation.chars() {
            assert!(pattern.contains(mark), "ID_PATTERN {pattern} lacks {mark}");
        }
        assert!(pattern.starts_with("\"[A-Za-z0-9"), "ID_PATTERN {pattern} must allow ASCII letters and digits");
    }
}
