//! Persistence, as ports and adapters: one trait per capability here (so a use case depends only on
//! what it uses), and one file per implementation: [`dynamo`] (the stock, holds and requests tables),
//! [`history`] (the audit trail's table), [`sns`] (alerts), [`digest`] (the daily digest's log) and
//! [`memory`] (in-memory, with the same
//! conditional semantics, for the use-case tests). Every state change is one conditional write or
//! one transaction, so counters move exactly once whatever races with them.
//!
//! The traits are `#[async_trait]`: each adapter method returns its future boxed, made inside the
//! adapter, so the SDK calls under it are compiled once, in this crate, instead of again in every
//! function binary that awaits them (an async body is compiled where it is polled). It cut each
//! binary's build from ~20 CPU-seconds to ~2; a heap allocation per store call is nothing next to
//! the network round trip it waits on.

use async_trait::async_trait;
use std::collections::BTreeMap;

use crate::admin::StockUpdate;
use crate::alerts::{Alert, AlertDecision};
use crate::digest::Digest;
use crate::domain::{CounterLook, ProductId, StockLevel, WarehouseId};
use crate::error::InventoryError;
use crate::history::HistoryEntry;
use crate::holds::{Reservation, ReservationId, Transition};
use crate::requests::RequestRecord;
use crate::time::EpochSeconds;

pub mod digest;
pub mod dynamo;
pub mod history;
pub mod live;
pub mod memory;
pub mod memory_live;
pub mod memory_shoppers;
pub mod ses;
pub mod sns;
pub mod subscriptions;

/// Reads the stock counters of a product.
#[async_trait]
pub trait StockReader: Sync {
    /// Every warehouse's counters for the product (or just `warehouse`'s), strongly consistent,
    /// ordered by warehouse id. Empty when there are none.
    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError>;

    /// The items a hold may be placed on (all warehouses, or just `warehouse`'s), for their settings
    /// (units per cart) and to order the warehouses by units for sale; whether a hold fits is the
    /// placing transaction's to decide. `stock_levels` by default. The DynamoDB adapter reads a
    /// sharded item's main item only, and keeps it a moment: every hold of a flash sale reading all
    /// shards, or the one main item, would make reads the bottleneck the shards remove. A sharded
    /// item's `available_count` is then unknown, given as [`MAY_COVER`] (tried first).
    async fn hold_targets(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        self.stock_levels(product, warehouse).await
    }
}

/// What `hold_targets` gives as a sharded item's units for sale: unknown here, and it may cover.
pub const MAY_COVER: i64 = i64::MAX;

/// What placing a hold came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed,
    /// The request's Idempotency-Key was used before (a retry): nothing was changed. The record
    /// of that request, with the hold it placed.
    AlreadyRequested(Box<RequestRecord>),
    /// The warehouse has fewer units for sale than asked: nothing was changed.
    Insufficient {
        available: i64,
    },
    /// The product has no stock item in that warehouse.
    NoStockItem,
    /// The hold's cart has as many ACTIVE holds as a cart may: nothing was changed.
    CartHoldsFull,
    /// The hold would take the cart past the product's units per cart: nothing was changed. The
    /// units of the product the cart holds now.
    CartUnitsFull {
        in_cart: i64,
    },
}

/// What ending a hold came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// The hold left ACTIVE now and the counters moved, once.
    Ended(Reservation),
    /// The hold was no longer ACTIVE (or, for a commit, past its expiry): nothing changed.
    /// The hold as it is now; `None` if it no longer exists.
    NotActive(Option<Reservation>),
    /// Checkout only: the shelf holds fewer units than the hold (an admin counted less stock).
    StockShort { stock_count: i64 },
}

/// Places, finds and ends holds.
#[async_trait]
pub trait HoldStore {
    /// Places `hold` and counts it in its cart, if the cart stays within [`MAX_HOLDS_PER_CART`](crate::limits::MAX_HOLDS_PER_CART)
    /// holds and `max_per_cart` units of the product; with `request`, records the request in the
    /// same transaction (a retry of it then finds the record instead of placing a second hold).
    async fn place_hold(
        &self,
        hold: &Reservation,
        max_per_cart: i64,
        request: Option<&RequestRecord>,
        actor: &str,
    ) -> Result<PlaceOutcome, InventoryError>;

    /// The hold, strongly consistent.
    async fn reservation(&self, id: &ReservationId) -> Result<Option<Reservation>, InventoryError>;

    /// Ends an ACTIVE hold once and gives its cart room again; a checkout binds the hold to
    /// `owner` (the signed-in user), conditional on no other user owning it.
    async fn end_hold(
        &self,
        hold: &Reservation,
        transition: Transition,
        actor: &str,
        owner: Option<&str>,
        now: EpochSeconds,
    ) -> Result<EndOutcome, InventoryError>;
}

/// What releasing a hold that TTL deleted came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedHoldOutcome {
    /// Its units are back on sale now, once.
    Released,
    /// Handled before: a repeated delivery, or the backstop got there first.
    AlreadyReleased,
    /// The reconciler had already set the counters from the holds on record after this hold was
    /// deleted (its record was lost or late): the hold is recorded as EXPIRED, its units stay.
    AccountedByReconciler,
}

/// What the stream consumers and the backstop do to holds.
#[async_trait]
pub trait ExpiryStore {
    /// Releases a hold that DynamoDB TTL deleted (at `deleted_at`) while ACTIVE: writes it back as
    /// EXPIRED (kept for audit) and returns its units, in one transaction conditional on the record
    /// not existing — hold ids are never reused, so a repeated delivery or a racing sweeper changes
    /// nothing — and on no repair by the reconciler having counted the deletion already.
    async fn expire_deleted_hold(
        &self,
        hold: &Reservation,
        deleted_at: EpochSeconds,
        now: EpochSeconds,
    ) -> Result<DeletedHoldOutcome, InventoryError>;

    /// Ids of ACTIVE holds due by `now`, oldest first, from the sparse index (at most `limit`,
    /// taken from every sweep partition alike, so a busy one cannot starve the others).
    async fn lapsed_holds(&self, now: EpochSeconds, limit: usize) -> Result<Vec<ReservationId>, InventoryError>;
}

/// The alert state on stock items.
#[async_trait]
pub trait AlertStore {
    /// The item now, strongly consistent.
    async fn stock_level(
        &self,
        product: &ProductId,
        warehouse: &WarehouseId,
    ) -> Result<Option<StockLevel>, InventoryError>;

    /// Records the alert state `decision` makes (announced status, damping's memory, and the alert
    /// to send, as JSON: `pending_alert`) if the item's figures are still those of `level` (same
    /// `sequence`), its alert state still that of `level` (`status` and `damping`), and no alert is
    /// pending. `false`: the item or its alert state moved first (read it again), or an alert
    /// claimed earlier is not confirmed yet (that one goes out first).
    async fn record_alert_state(
        &self,
        level: &StockLevel,
        decision: &AlertDecision,
        pending_alert: Option<&str>,
    ) -> Result<bool, InventoryError>;

    /// Marks the pending alert published (if it is still exactly `pending_alert`).
    async fn finish_alert(&self, level: &StockLevel, pending_alert: &str) -> Result<(), InventoryError>;
}

/// The rebalancer's write (see `sharding`).
#[async_trait]
pub trait ShardStore {
    /// Moves `plan.units` for sale from shard `plan.from` to shard `plan.to` of the item, in one
    /// transaction conditional on the giving shard still having them: the total never changes.
    /// `false`: it no longer has them (nothing moved).
    async fn move_units(
        &self,
        level: &StockLevel,
        plan: crate::sharding::Rebalance,
        now: EpochSeconds,
    ) -> Result<bool, InventoryError>;
}

/// Where alerts go.
#[async_trait]
pub trait AlertPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), InventoryError>;
}

/// What an admin change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    /// Applied; the item as it is right after.
    Updated(StockLevel),
    /// A condition failed: the item as it is (`None`: it does not exist). Nothing changed.
    Refused(Option<StockLevel>),
    /// The request was made before (a retry): nothing changed. Whether it was the same request
    /// (fingerprint), and the item as it is.
    Replayed { same_request: bool, current: Option<StockLevel> },
}

/// A page of the admin list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockPage {
    pub items: Vec<StockLevel>,
    /// The key of the last item scanned, when there may be more.
    pub last_key: Option<(ProductId, WarehouseId)>,
}

/// Admin writes and the admin list.
#[async_trait]
pub trait StockAdmin {
    /// Applies `update` and records `request` in one transaction.
    async fn update_stock(
        &self,
        product: &ProductId,
        update: &StockUpdate,
        request: &RequestRecord,
        actor: &str,
        now: EpochSeconds,
    ) -> Result<AdminOutcome, InventoryError>;

    /// Up to `limit` items after `after`, in the table's scan order.
    async fn scan_stock(
        &self,
        after: Option<&(ProductId, WarehouseId)>,
        limit: usize,
    ) -> Result<StockPage, InventoryError>;
}

/// What the reconciler reads and writes (see `reconcile`).
#[async_trait]
pub trait ReconcileStore {
    /// Units taken by the item's ACTIVE holds, from the sparse `active-by-item` index (eventually
    /// consistent: the reconciler looks twice).
    async fn active_units(&self, product: &ProductId, warehouse: &WarehouseId) -> Result<i64, InventoryError>;

    /// Keeps `look` on the item (`None`: drops the one there), if the item is still at the
    /// sequence it was read at. `false`: it changed meanwhile; nothing was written.
    async fn keep_look(&self, level: &StockLevel, look: Option<CounterLook>) -> Result<bool, InventoryError>;

    /// Sets reserved (and available) from `active_units`, if the item still has exactly the figures
    /// and look of `level`; records the repair as the item's last change. `None`: it changed.
    async fn repair_counters(
        &self,
        level: &StockLevel,
        look: CounterLook,
        active_units: i64,
        now: EpochSeconds,
    ) -> Result<Option<StockLevel>, InventoryError>;
}

/// The audit trail's table (`HISTORY_TABLE`): entries keyed by product and a time-ordered entry id.
#[async_trait]
pub trait HistoryStore {
    /// Writes the entry; writing the same entry again leaves one entry (stream replays).
    async fn record_entry(&self, entry: &HistoryEntry) -> Result<(), InventoryError>;

    /// Up to `limit` entries of a product, newest first, after the entry id `before` (a page's last).
    async fn entries(
        &self,
        product: &ProductId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, Option<String>), InventoryError>;
}

/// Sales, from the audit trail's table (the daily digest's pace of sales).
#[async_trait]
pub trait SalesHistory {
    /// Units of `product` sold (checked out) in each of its warehouses from `since` on: the sum of
    /// the audit trail's `committed` entries recorded since then (by the stream's clock, the time in
    /// their `entry_id`). A warehouse with no sale is absent.
    async fn units_sold_since(
        &self,
        product: &ProductId,
        since: EpochSeconds,
    ) -> Result<BTreeMap<WarehouseId, i64>, InventoryError>;
}

/// Who holds the day's digest (see `digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestClaim {
    /// This run sends the day's digest.
    Claimed,
    /// A run sent it (or found nothing to send) already.
    Done,
    /// Another run claimed it less than the lease ago and has not confirmed it yet.
    InFlight,
}

/// The log of daily digests (the requests table: one record per day), so a day gets one digest
/// whatever retries or duplicate schedule events run the function.
#[async_trait]
pub trait DigestLog {
    /// Claims `day`'s digest for `run_id` if no run claimed it, or if a claim made before
    /// `stale_before` was never confirmed (its run died: no run lives longer than the lease).
    async fn claim_digest(
        &self,
        day: &str,
        run_id: &str,
        now: EpochSeconds,
        stale_before: EpochSeconds,
    ) -> Result<DigestClaim, InventoryError>;

    /// Confirms `run_id`'s claim: the digest went out (with `items` lines; 0: nothing was low).
    async fn confirm_digest(
        &self,
        day: &str,
        run_id: &str,
        items: usize,
        now: EpochSeconds,
    ) -> Result<(), InventoryError>;

    /// Drops `run_id`'s claim (its digest could not be sent), so a retry can send it.
    async fn release_digest(&self, day: &str, run_id: &str) -> Result<(), InventoryError>;
}

/// Where the daily digest goes (the alerts topic).
#[async_trait]
pub trait DigestPublisher {
    async fn publish_digest(&self, digest: &Digest) -> Result<(), InventoryError>;
}

// --- Back-in-stock sign-ups (see `back_in_stock`) -----------------------------------------------

/// What confirming a subscription came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// PENDING → CONFIRMED now.
    Confirmed,
    /// It was confirmed before (a second click): nothing changed.
    AlreadyConfirmed,
    /// No subscription with that token: lapsed, replaced by a newer sign-up, notified or unsubscribed.
    NotFound,
}

/// The subscriptions table (`SUBSCRIPTIONS_TABLE`, keyed by product and subscriber) and the carts'
/// sign-up counts (requests table). Each change is one conditional write.
#[async_trait]
pub trait SubscriptionStore {
    /// Counts one sign-up of `cart` in the clock hour `window`, if it made fewer than `limit` in it.
    /// `false`: the cart is at its limit; nothing was counted.
    async fn count_sign_up(
        &self,
        cart: &crate::holds::CartId,
        window: i64,
        limit: i64,
        now: EpochSeconds,
    ) -> Result<bool, InventoryError>;

    /// Writes `pending` if there is no subscription for its key, or a PENDING one whose last
    /// confirmation mail was claimed before `resend_before` (its token is replaced). `false`: there
    /// is a confirmed one, or a mail went out recently; nothing was written.
    async fn start_sign_up(
        &self,
        pending: &crate::back_in_stock::Subscription,
        resend_before: EpochSeconds,
    ) -> Result<bool, InventoryError>;

    /// Deletes `pending` (still with its token): its confirmation mail was not sent.
    async fn drop_sign_up(&self, pending: &crate::back_in_stock::Subscription) -> Result<(), InventoryError>;

    /// PENDING (not lapsed at `now`) with `token_hash` → CONFIRMED until `expires_at`.
    async fn confirm(
        &self,
        key: &crate::back_in_stock::SubscriptionKey,
        token_hash: &str,
        now: EpochSeconds,
        expires_at: EpochSeconds,
    ) -> Result<ConfirmOutcome, InventoryError>;

    /// Deletes the subscription if it has `token_hash`, whatever its state. Whether it did.
    async fn unsubscribe(
        &self,
        key: &crate::back_in_stock::SubscriptionKey,
        token_hash: &str,
    ) -> Result<bool, InventoryError>;

    /// The product's CONFIRMED subscriptions not lapsed at `now`, strongly consistent.
    async fn confirmed(
        &self,
        product: &ProductId,
        now: EpochSeconds,
    ) -> Result<Vec<crate::back_in_stock::Subscription>, InventoryError>;

    /// CONFIRMED → SENDING (kept until `expires_at` at most), if it is still CONFIRMED with the same
    /// token. `None`: someone claimed, ended or replaced it first.
    async fn claim_notification(
        &self,
        subscription: &crate::back_in_stock::Subscription,
        expires_at: EpochSeconds,
    ) -> Result<Option<crate::back_in_stock::Subscription>, InventoryError>;

    /// Deletes a claimed (SENDING) subscription: its e-mail went out.
    async fn end_subscription(&self, claimed: &crate::back_in_stock::Subscription) -> Result<(), InventoryError>;

    /// SENDING → CONFIRMED: its e-mail was refused, for a later try.
    async fn release_notification(&self, claimed: &crate::back_in_stock::Subscription) -> Result<(), InventoryError>;
}

/// Where shoppers' e-mails go (SES).
#[async_trait]
pub trait Mailer {
    async fn send(&self, email: &crate::back_in_stock::Email) -> Result<(), crate::back_in_stock::MailFailure>;
}

// --- Live stock on the pages and the change feed (see `live`) -----------------------------------

/// The live connections table (`CONNECTIONS_TABLE`): one record per connection (who opened it,
/// what it watches) and one per topic it watches, found by topic through a sparse index. Records
/// lapse with TTL when API Gateway would have closed the connection.
#[async_trait]
pub trait LiveConnectionStore {
    async fn open_connection(
        &self,
        connection: &crate::live::ConnectionId,
        viewer: &crate::live::Viewer,
        expires_at: EpochSeconds,
    ) -> Result<(), InventoryError>;

    /// Who opened the connection, strongly consistent; `None` if it is closed.
    async fn viewer(
        &self,
        connection: &crate::live::ConnectionId,
    ) -> Result<Option<crate::live::Viewer>, InventoryError>;

    /// Adds `topics` to what the connection watches, if it stays within `limit`; conditional on the
    /// connection's record, so two messages at once can never take it past the limit.
    async fn subscribe(
        &self,
        connection: &crate::live::ConnectionId,
        topics: &std::collections::BTreeSet<crate::live::Topic>,
        limit: usize,
    ) -> Result<crate::live::SubscribeOutcome, InventoryError>;

    async fn unsubscribe(
        &self,
        connection: &crate::live::ConnectionId,
        topics: &std::collections::BTreeSet<crate::live::Topic>,
    ) -> Result<crate::live::SubscribeOutcome, InventoryError>;

    /// Deletes the connection's records (a repeat finds nothing to delete).
    async fn close_connection(&self, connection: &crate::live::ConnectionId) -> Result<(), InventoryError>;

    /// The connections watching `topic` (from the index: eventually consistent, and a page
    /// re-fetches after subscribing, so a push it misses meanwhile cannot leave it wrong).
    async fn subscribers(&self, topic: &crate::live::Topic) -> Result<Vec<crate::live::ConnectionId>, InventoryError>;
}

/// What one push to one connection came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection is closed (410 Gone): forget it.
    Gone,
    /// Anything else (throttled, timed out): the page missed a change, so it is hung up on.
    Failed(String),
}

/// Where pushes go (API Gateway's `@connections` API).
#[async_trait]
pub trait LivePusher {
    async fn push(&self, connection: &crate::live::ConnectionId, body: &str) -> PushOutcome;

    /// Closes the connection (best effort; logged): its page reconnects and re-fetches.
    async fn hang_up(&self, connection: &crate::live::ConnectionId);
}

/// The change feed for other systems (an EventBridge bus).
#[async_trait]
pub trait ChangeFeed {
    /// Publishes the events, each tagged with the index of the record it came from. On failure:
    /// the record index of the first event not published, and why.
    async fn publish(&self, events: &[(usize, crate::live::FeedEvent)]) -> Result<(), (usize, InventoryError)>;
}
