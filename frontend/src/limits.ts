// Input limits of the API, the same numbers as shared/src/limits.rs (a Rust unit test keeps them equal).
export const MAX_ID_LEN = 64;
export const ID_PATTERN = "[A-Za-z0-9._:\\-]+";
export const MAX_HOLD_QUANTITY = 1000;
export const MAX_STOCK = 1000000000;
export const MAX_SHARDS = 32;
export const MAX_REASON_LEN = 200;
export const MAX_EMAIL_LEN = 254;
