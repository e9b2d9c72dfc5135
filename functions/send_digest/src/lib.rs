//! The daily digest (EventBridge, `DigestSchedule`): one message to the alerts topic listing every
//! low or out-of-stock item, soonest to run out first at the last 7 days' pace of sales; once a day.
//! Returns what it did.

use shared::digest::{self, DigestReport};
use shared::store::{DigestLog, DigestPublisher, SalesHistory, StockAdmin};
use shared::{time, InventoryError};

/// What the digest reads and writes: the stock items, the audit trail's sales, the day's log, the topic.
pub struct DigestStores<S, H, L, P> {
    pub stock: S,
    pub sales: H,
    pub log: L,
    pub publisher: P,
}

/// The handler: one run (the schedule's event carries nothing it needs; the day is today's, UTC).
pub async fn handler(
    stores: &DigestStores<impl StockAdmin, impl SalesHistory, impl DigestLog, impl DigestPublisher>,
) -> Result<DigestReport, InventoryError> {
    digest::send_daily_digest(&stores.stock, &stores.sales, &stores.log, &stores.publisher, time::now()).await
}
