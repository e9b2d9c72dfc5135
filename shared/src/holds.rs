//! Holds (reservations): what a hold is, how it may change, and what each change does to the
//! counters. Pure rules; the store applies them atomically.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ChangeKind, ProductId, WarehouseId};
use crate::error::InventoryError;
use crate::limits::{
    MAX_CART_TOKEN_LEN, MAX_HOLD_QUANTITY, MAX_IDEMPOTENCY_KEY_LEN, MIN_CART_TOKEN_LEN, MIN_IDEMPOTENCY_KEY_LEN,
};
use crate::time::{rfc3339, EpochSeconds};

/// A number of units in one hold: a whole number from 1 to [`MAX_HOLD_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    pub fn new(units: i64) -> Result<Self, InventoryError> {
        if (1..=MAX_HOLD_QUANTITY).contains(&units) {
            Ok(Self(units))
        } else {
            Err(InventoryError::invalid("quantity", Self::RULE))
        }
    }
    pub fn units(self) -> i64 {
        self.0
    }
    const RULE: &'static str = "quantity must be a whole number from 1 to 1000";
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Units;
        impl serde::de::Visitor<'_> for Units {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number from 1 to 1000")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Quantity::new(v).map_err(|_| E::custom(Quantity::RULE))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_i64(Units)
    }
}

/// A hold's life: ACTIVE, then exactly one of the others, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationState {
    Active,
    Committed,
    Released,
    Expired,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// A reservation id: a UUID, validated at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReservationId(Uuid);

impl ReservationId {
    /// Every hold gets a new random id, also when an Idempotency-Key names the request: an id is
    /// never reused (a lapsed hold's record may already be gone when a retry arrives, and its units
    /// must come back exactly once), and nothing a stranger can see derives it.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// A number spread evenly over ids (they are random): picks a hold's shard.
    pub fn spread(&self) -> u128 {
        self.0.as_u128()
    }

    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        Uuid::try_parse(raw).map(Self).map_err(|_| {
            InventoryError::invalid("reservation_id", "reservation_id must be a UUID as returned by reserve")
        })
    }
}

impl TryFrom<String> for ReservationId {
    type Error = InventoryError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ReservationId> for String {
    fn from(id: ReservationId) -> Self {
        id.0.hyphenated().to_string()
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The `Idempotency-Key` header of a reserve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let valid_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if (MIN_IDEMPOTENCY_KEY_LEN..=MAX_IDEMPOTENCY_KEY_LEN).contains(&raw.len()) && valid_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InventoryError::invalid(
                "Idempotency-Key",
                format!(
                    "Idempotency-Key must be {MIN_IDEMPOTENCY_KEY_LEN}-{MAX_IDEMPOTENCY_KEY_LEN} letters, digits or - _ . : (a UUID is ideal)"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Cart-Token` header: a random secret only the shopper's client knows, sent with reserve,
/// release and checkout. It is never stored or logged; holds keep its hash ([`CartId`]).
#[derive(Clone, PartialEq, Eq)]
pub struct CartToken(String);

impl CartToken {
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let valid_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if (MIN_CART_TOKEN_LEN..=MAX_CART_TOKEN_LEN).contains(&raw.len()) && valid_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InventoryError::invalid(
                "Cart-Token",
                format!(
                    "Cart-Token must be {MIN_CART_TOKEN_LEN}-{MAX_CART_TOKEN_LEN} letters, digits, - or _ \
                     (at least 128 random bits, e.g. 32 random bytes in base64url)"
                ),
            ))
        }
    }

    /// The cart this token opens. SHA-256 is enough: the token is a random secret of at least 128
    /// bits, not a password, so nothing is gained by a slow hash.
    pub fn cart(&self) -> CartId {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        CartId(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }
}

// The token is a secret: never printed, not even in a debug dump of a request.
impl fmt::Debug for CartToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CartToken(…)")
    }
}

/// A cart: the SHA-256 of its `Cart-Token`, stored with each of its holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CartId(String);

impl CartId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who places a hold: their cart, the signed-in user where the route verified one, and how the audit
/// trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub cart: CartId,
    pub user: Option<String>,
    pub actor: String,
}

/// What a caller shows to end a hold: the hold's cart token, and the verified signed-in user (if
/// the route has the authorizer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderProof {
    pub cart: Option<CartId>,
    pub user: Option<String>,
}

/// Body of `POST /inventory/{productId}/reserve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub quantity: Quantity,
    #[serde(default)]
    pub warehouse_id: Option<WarehouseId>,
}

impl ReserveRequest {
    /// What a retry with the same Idempotency-Key must repeat exactly; a different body under the
    /// same key is refused (422), not silently answered with the first hold.
    pub fn fingerprint(&self) -> String {
        let warehouse = self.warehouse_id.as_ref().map_or("*", WarehouseId::as_str);
        format!("quantity={};warehouse={warehouse}", self.quantity.units())
    }
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: ReservationId,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub quantity: Quantity,
    pub state: ReservationState,
    pub created_at: EpochSeconds,
    pub expires_at: EpochSeconds,
    pub request_fingerprint: String,
    /// The cart that placed it (hash of its token). `None` only on holds placed before carts existed:
    /// those end only by expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart: Option<CartId>,
    /// The signed-in user it is bound to (Cognito `sub`): who placed it, where holds require sign-in,
    /// or who checked it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<EpochSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// Where a hold on a sharded item took its units (shard, units); empty: all from the main item
    /// (shard 0). Commit, release and expiry return exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocation: Vec<ShardTake>,
}

/// Units a hold took from one shard of its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTake {
    pub shard: u32,
    pub units: i64,
}

impl Reservation {
    /// What the hold took from where: its allocation, or all of it from the main item.
    pub fn takes(&self) -> Vec<ShardTake> {
        if self.allocation.is_empty() {
            vec![ShardTake { shard: 0, units: self.quantity.units() }]
        } else {
            self.allocation.clone()
        }
    }
}

impl Reservation {
    pub fn new(
        reservation_id: ReservationId,
        product_id: ProductId,
        warehouse_id: WarehouseId,
        request: &ReserveRequest,
        now: EpochSeconds,
        hold_seconds: i64,
    ) -> Self {
        Self {
            cart: None,
            owner: None,
            allocation: Vec::new(),
            reservation_id,
            product_id,
            warehouse_id,
            quantity: request.quantity,
            state: ReservationState::Active,
            created_at: now,
            expires_at: now + hold_seconds,
            request_fingerprint: request.fingerprint(),
            ended_at: None,
            ended_by: None,
        }
    }

    /// Whether `proof` shows the caller holds this hold: its cart's token, or its signed-in owner.
    pub fn is_held_by(&self, proof: &HolderProof) -> bool {
        let by_cart = self.cart.is_some() && self.cart == proof.cart;
        let by_owner = self.owner.is_some() && self.owner == proof.user;
        by_cart || by_owner
    }

    /// Past its expiry: no longer commits, whatever TTL or the sweeper have done yet.
    pub fn is_past_expiry(&self, now: EpochSeconds) -> bool {
        now >= self.expires_at
    }

    pub fn view(&self) -> ReservationView {
        ReservationView {
            reservation_id: self.reservation_id.to_string(),
            product_id: self.product_id.clone(),
            warehouse_id: self.warehouse_id.clone(),
            quantity: self.quantity.units(),
            expires_at: rfc3339(self.expires_at),
            status: self.state,
        }
    }
}

/// A hold as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationView {
    pub reservation_id: String,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub quantity: i64,
    pub expires_at: String,
    pub status: ReservationState,
}

/// The ways a hold leaves ACTIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Checkout: the held units are sold.
    Commit,
    /// The shopper removed the item: the units go back on sale.
    Release,
    /// The hold lapsed: the units go back on sale.
    Expire,
}

/// How a transition moves the stock item's counters: (stock, reserved, available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterDelta {
    pub stock: i64,
    pub reserved: i64,
    pub available: i64,
}

impl CounterDelta {
    /// Placing a hold takes units off sale.
    pub fn place(units: i64) -> Self {
        let q = units;
        Self { stock: 0, reserved: q, available: -q }
    }
}

impl Transition {
    pub fn target(self) -> ReservationState {
        match self {
            Self::Commit => ReservationState::Committed,
            Self::Release => ReservationState::Released,
            Self::Expire => ReservationState::Expired,
        }
    }

    /// What the audit trail calls the change this transition makes.
    pub fn change_kind(self) -> ChangeKind {
        match self {
            Self::Commit => ChangeKind::Committed,
            Self::Release => ChangeKind::Released,
            Self::Expire => ChangeKind::Expired,
        }
    }

    pub fn counters(self, units: i64) -> CounterDelta {
        let q = units;
        match self {
            Self::Commit => CounterDelta { stock: -q, reserved: -q, available: 0 },
            Self::Release | Self::Expire => CounterDelta { stock: 0, reserved: -q, available: q },
        }
    }

    /// Whether this transition may be applied to `hold` now. `Ok(true)`: apply it; `Ok(false)`:
    /// it already happened (a repeat), answer with the hold as it is and change nothing;
    /// `Err`: refuse.
    pub fn check(self, hold: &Reservation, now: EpochSeconds) -> Result<bool, InventoryError> {
        use ReservationState::*;
        let id = &hold.reservation_id;
        match (self, hold.state) {
            (Self::Commit, Active) if hold.is_past_expiry(now) => Err(InventoryError::ReservationExpired {
                message: format!("hold {id} expired at {}; add the item to the cart again", rfc3339(hold.expires_at)),
            }),
            (_, Active) => Ok(true),
            // Repeats, and releasing or expiring a hold whose units are already back or sold.
            (Self::Commit, Committed) | (Self::Release, Released | Expired) | (Self::Expire, _) => Ok(false),
            (Self::Commit, Expired) => Err(InventoryError::ReservationExpired {
                message: format!("hold {id} expired; add the item to the cart again"),
            }),
            (Self::Commit, Released) => Err(InventoryError::ReservationReleased {
                message: format!("hold {id} was released; add the item to the cart again"),
            }),
            (Self::Release, Committed) => Err(InventoryError::ReservationCommitted {
                message: format!("hold {id} was checked out and can no longer be released"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(state: ReservationState) -> Reservation {
        let request = ReserveRequest { quantity: Quantity::new(3).unwrap(), warehouse_id: None };
        let mut hold = Reservation::new(
            ReservationId::random(),
            ProductId::parse("SKU-1").unwrap(),
            WarehouseId::parse("main").unwrap(),
            &request,
            1_000,
            900,
        );
        hold.state = state;
        hold
    }

    #[test]
    fn quantity_accepts_1_to_the_cap_only() {
        assert!(Quantity::new(1).is_ok());
        assert!(Quantity::new(MAX_HOLD_QUANTITY).is_ok());
        for bad in [0, -1, MAX_HOLD_QUANTITY + 1, i64::MIN] {
            assert!(Quantity::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserve_body_refuses_every_malformed_quantity() {
        let parse = |body: &str| serde_json::from_str::<ReserveRequest>(body);
        assert_eq!(parse(r#"{"quantity":2}"#).unwrap().quantity.units(), 2);
        for body in [
            r#"{"quantity":0}"#,
            r#"{"quantity":-1}"#,
            r#"{"quantity":1.5}"#,
            r#"{"quantity":1.0}"#,
            r#"{"quantity":"3"}"#,
            r#"{"quantity":1001}"#,
            r#"{"quantity":18446744073709551615}"#,
            r#"{"quantity":null}"#,
            r#"{}"#,
            r#"{"quantity":1,"colour":"red"}"#,
            r#"{"quantity":1,"warehouse_id":"a b"}"#,
        ] {
            assert!(parse(body).is_err(), "{body} was accepted");
        }
    }

    #[test]
    fn idempotency_keys_are_checked_and_ids_are_never_reused() {
        assert!(IdempotencyKey::parse("0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11").is_ok());
        assert_ne!(ReservationId::random(), ReservationId::random());
        for bad in ["short", "", &"k".repeat(129), "has space in it ok?", "ünïcode-key-0123456"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprint_distinguishes_quantity_and_warehouse() {
        let a = ReserveRequest { quantity: Quantity::new(1).unwrap(), warehouse_id: None };
        let b = ReserveRequest { quantity: Quantity::new(2).unwrap(), warehouse_id: None };
        let c = ReserveRequest {
            quantity: Quantity::new(1).unwrap(),
            warehouse_id: Some(WarehouseId::parse("main").unwrap()),
        };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn a_cart_token_is_long_random_text_and_only_its_hash_is_kept() {
        let token = CartToken::parse("Xq3-_abcdefghijklmnopqrstuvwxyz0123456789ABC").unwrap();
        let cart = token.cart();
        assert_eq!(cart.as_str().len(), 64);
        assert!(!cart.as_str().contains("Xq3"));
        assert_eq!(cart, CartToken::parse("Xq3-_abcdefghijklmnopqrstuvwxyz0123456789ABC").unwrap().cart());
        assert_ne!(cart, CartToken::parse("Xq3-_abcdefghijklmnopqrstuvwxyz0123456789ABD").unwrap().cart());
        assert_eq!(format!("{token:?}"), "CartToken(…)");
        for bad in [
            "",
            "short",
            &"a".repeat(MIN_CART_TOKEN_LEN - 1),
            &"a".repeat(MAX_CART_TOKEN_LEN + 1),
            "has spaces in it but is long enough",
            "dots.are.not.base64url.at.all",
        ] {
            assert!(CartToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_holder_ends_a_hold() {
        let mine = CartToken::parse(&"m".repeat(32)).unwrap().cart();
        let theirs = CartToken::parse(&"t".repeat(32)).unwrap().cart();
        let mut held = hold(ReservationState::Active);
        held.cart = Some(mine.clone());
        assert!(held.is_held_by(&HolderProof { cart: Some(mine.clone()), user: None }));
        assert!(!held.is_held_by(&HolderProof { cart: Some(theirs), user: Some("u1".into()) }));
        assert!(!held.is_held_by(&HolderProof::default()));
        held.owner = Some("u1".into());
        assert!(held.is_held_by(&HolderProof { cart: None, user: Some("u1".into()) }));
        assert!(!held.is_held_by(&HolderProof { cart: None, user: Some("u2".into()) }));
        // A hold from before carts existed is nobody's: it ends by expiry only.
        let legacy = hold(ReservationState::Active);
        assert!(!legacy.is_held_by(&HolderProof { cart: Some(mine), user: Some("u1".into()) }));
    }

    #[test]
    fn reservation_id_round_trips_and_refuses_garbage() {
        let id = ReservationId::random();
        assert_eq!(ReservationId::parse(&id.to_string()).unwrap(), id);
        assert!(ReservationId::parse("not-a-uuid").is_err());
        assert!(ReservationId::parse("").is_err());
    }

    #[test]
    fn counters_move_as_the_invariants_say() {
        let q = 3;
        assert_eq!(CounterDelta::place(q), CounterDelta { stock: 0, reserved: 3, available: -3 });
        assert_eq!(Transition::Commit.counters(q), CounterDelta { stock: -3, reserved: -3, available: 0 });
        assert_eq!(Transition::Release.counters(q), CounterDelta { stock: 0, reserved: -3, available: 3 });
        assert_eq!(Transition::Expire.counters(q), Transition::Release.counters(q));
        // Place then any ending leaves reserved where it was.
        for t in [Transition::Commit, Transition::Release, Transition::Expire] {
            assert_eq!(CounterDelta::place(q).reserved + t.counters(q).reserved, 0);
        }
    }

    #[test]
    fn active_holds_transition_once() {
        use ReservationState::*;
        let now = 1_500;
        for t in [Transition::Commit, Transition::Release, Transition::Expire] {
            assert_eq!(t.check(&hold(Active), now), Ok(true));
            // The repeat of what happened is harmless and changes nothing.
            assert_eq!(t.check(&hold(t.target()), now), Ok(false));
        }
        assert_eq!(Transition::Release.check(&hold(Expired), now), Ok(false));
        assert_eq!(Transition::Expire.check(&hold(Committed), now), Ok(false));
        assert_eq!(Transition::Expire.check(&hold(Released), now), Ok(false));
    }

    #[test]
    fn refusals_carry_the_documented_codes() {
        use ReservationState::*;
        let code = |t: Transition, state, now| t.check(&hold(state), now).unwrap_err().code();
        assert_eq!(code(Transition::Commit, Active, 1_900), "RESERVATION_EXPIRED"); // at expiry
        assert_eq!(code(Transition::Commit, Expired, 1_500), "RESERVATION_EXPIRED");
        assert_eq!(code(Transition::Commit, Released, 1_500), "RESERVATION_RELEASED");
        assert_eq!(code(Transition::Release, Committed, 1_500), "RESERVATION_COMMITTED");
        // Releasing a hold past expiry that nothing has swept yet is allowed: the units come back.
        assert_eq!(Transition::Release.check(&hold(Active), 5_000), Ok(true));
    }

    #[test]
    fn view_shows_expiry_as_rfc3339() {
        let view = hold(ReservationState::Active).view();
        assert_eq!(view.expires_at, "1970-01-01T00:31:40Z");
        assert_eq!(serde_json::to_value(&view).unwrap()["status"], "ACTIVE");
    }
}
