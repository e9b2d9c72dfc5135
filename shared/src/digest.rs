//! The daily digest: one message a day to the alerts topic listing every stock item (product and
//! warehouse) that is low (available at or below its threshold) or out of stock (available ≤ 0),
//! with its figures, soonest to run out first at the last 7 days' pace of sales (from the audit
//! trail). The per-crossing alerts say *that* an item went low; the digest says *which ones to
//! reorder first*.
//!
//! **Order**: estimated days left ascending, days left = available ÷ (units sold in the last 7 days
//! ÷ 7). Out of stock is 0 days left, so first; an item that sold nothing in 7 days is not running
//! out at that pace and comes last; ties by product, then warehouse. Compared exactly (cross
//! multiplication), not as rounded figures.
//!
//! **Once a day** (the UTC date of the run): a run claims the day in the digest log before it
//! publishes and confirms the claim after. A failed publish drops the claim and fails the run, so
//! Lambda's retry sends it. A run that dies holding the claim (killed, timed out) leaves it to be
//! taken over after [`LEASE_SECONDS`], longer than the function's timeout, so two runs never send
//! at once. The one window for a duplicate is a run dying between SNS accepting the message and the
//! confirmation; the message carries `digest_id` (the day) so a subscriber can drop it. A day that
//! was missed (the function failed all its retries) is not sent later: tomorrow's digest lists the
//! items again.
//!
//! **Nothing low**: no message (managers asked for no mail when there is nothing to do), and the day
//! counts as done: a second run the same day sends nothing either, even if an item ran low since
//! (its per-crossing alert told of it).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;

use futures::stream::{self, StreamExt};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{ProductId, StockLevel, StockStatus, WarehouseId};
use crate::error::InventoryError;
use crate::store::{DigestClaim, DigestLog, DigestPublisher, SalesHistory, StockAdmin};
use crate::time::{rfc3339, EpochSeconds};

/// The pace of sales is measured over this many days.
pub const SALES_WINDOW_DAYS: i64 = 7;
/// A claim on the day older than this was left by a run that died (the function's timeout is 60 s).
pub const LEASE_SECONDS: i64 = 90;
/// Lines in one message at most (an SNS message holds 256 KB; a line is about 120 bytes). The rest
/// are counted in the subject and the first line, and named in the admin panel's Low/Out filter.
pub const MAX_LINES: usize = 1000;
/// Products whose sales one run reads at once.
const CONCURRENCY: usize = 16;
/// Stock items per page of the scan.
const SCAN_PAGE: usize = 500;

/// One low or out-of-stock item, with its sales over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestLine {
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub status: StockStatus,
    pub available: i64,
    pub stock_count: i64,
    pub reserved_count: i64,
    pub threshold_level: i64,
    /// Units sold (checked out) in the last [`SALES_WINDOW_DAYS`] days.
    pub sold: i64,
}

impl DigestLine {
    fn of(level: &StockLevel, sold: i64) -> Self {
        Self {
            product_id: level.product_id.clone(),
            warehouse_id: level.warehouse_id.clone(),
            status: StockStatus::for_levels(level.available_count, level.threshold_level),
            available: level.available_count,
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            threshold_level: level.threshold_level,
            sold: sold.max(0),
        }
    }

    /// Units sold per day over the window.
    pub fn per_day(&self) -> f64 {
        self.sold as f64 / SALES_WINDOW_DAYS as f64
    }

    /// Days until it runs out at that pace: 0 when out of stock, `None` when nothing sold.
    pub fn days_left(&self) -> Option<f64> {
        if self.available <= 0 {
            Some(0.0)
        } else if self.sold > 0 {
            Some(self.available as f64 / self.per_day())
        } else {
            None
        }
    }

    /// The digest's order (see the module's documentation).
    fn soonest_first(&self, other: &Self) -> Ordering {
        // 0: out of stock (0 days), 1: running out at some pace, 2: no sales (never, at that pace).
        let rank = |line: &Self| match (line.available <= 0, line.sold > 0) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        let by_days_left = || {
            // a.available / a.pace < b.available / b.pace, with pace = sold / window, both sold > 0.
            let weigh = |a: &Self, b: &Self| i128::from(a.available) * i128::from(b.sold);
            if rank(self) == 1 {
                weigh(self, other).cmp(&weigh(other, self))
            } else {
                Ordering::Equal
            }
        };
        rank(self)
            .cmp(&rank(other))
            .then_with(by_days_left)
            .then_with(|| self.product_id.cmp(&other.product_id))
            .then_with(|| self.warehouse_id.cmp(&other.warehouse_id))
    }
}

/// The day's digest, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// The UTC date it is for (`2026-11-26`): also its id, stable across a rare duplicate delivery.
    pub day: String,
    /// When the figures were read.
    pub at: String,
    /// Soonest to run out first; at most [`MAX_LINES`].
    pub lines: Vec<DigestLine>,
    pub out_of_stock: usize,
    pub low: usize,
}

impl Digest {
    /// The digest of these items (any order), sorted and, past [`MAX_LINES`], cut.
    pub fn new(day: String, at: EpochSeconds, mut lines: Vec<DigestLine>) -> Self {
        lines.sort_by(DigestLine::soonest_first);
        let out_of_stock = lines.iter().filter(|line| line.status == StockStatus::OutOfStock).count();
        let low = lines.len() - out_of_stock;
        lines.truncate(MAX_LINES);
        Self { day, at: rfc3339(at), lines, out_of_stock, low }
    }

    /// Items low or out of stock that the message does not list (past [`MAX_LINES`]).
    pub fn unlisted(&self) -> usize {
        self.out_of_stock + self.low - self.lines.len()
    }

    /// ASCII, one line, under 100 characters (SNS's limits for a subject; e-mail shows it as is).
    pub fn subject(&self) -> String {
        format!("Daily stock digest {}: {} out of stock, {} low", self.day, self.out_of_stock, self.low)
    }

    /// The message: plain text, a table with one line per item (columns aligned for a fixed-width
    /// font, separated by `|` so that it reads in any font).
    pub fn text(&self) -> String {
        let mut text = format!(
            "Daily stock digest for {}: {} out of stock, {} low (available at or below the threshold).\n\
             Figures as of {}. Soonest to run out first, at the last {SALES_WINDOW_DAYS} days' pace of sales; \
             items that sold nothing in {SALES_WINDOW_DAYS} days last.\n\n",
            self.day, self.out_of_stock, self.low, self.at
        );
        let header = [
            "#",
            "product",
            "warehouse",
            "status",
            "available",
            "on hand",
            "reserved",
            "threshold",
            "sold 7d",
            "per day",
            "days left",
        ];
        let rows: Vec<[String; 11]> = self
            .lines
            .iter()
            .enumerate()
            .map(|(n, line)| {
                [
                    (n + 1).to_string(),
                    line.product_id.to_string(),
                    line.warehouse_id.to_string(),
                    match line.status {
                        StockStatus::OutOfStock => "OUT OF STOCK".to_owned(),
                        _ => "LOW".to_owned(),
                    },
                    line.available.to_string(),
                    line.stock_count.to_string(),
                    line.reserved_count.to_string(),
                    line.threshold_level.to_string(),
                    line.sold.to_string(),
                    format!("{:.1}", line.per_day()),
                    match line.days_left() {
                        _ if line.available <= 0 => "0".to_owned(),
                        Some(days) => format!("{days:.1}"),
                        None => "-".to_owned(),
                    },
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|column| rows.iter().map(|row| row[column].len()).chain([header[column].len()]).max().unwrap_or(0))
            .collect();
        // Text columns (product, warehouse, status) to the left, figures to the right.
        let cells = |row: Vec<&str>| {
            row.iter()
                .zip(&widths)
                .enumerate()
                .map(
                    |(column, (cell, &width))| {
                        if (1..=3).contains(&column) {
                            format!("{cell:<width$}")
                        } else {
                            format!("{cell:>width$}")
                        }
                    },
                )
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let _ = writeln!(text, "{}", cells(header.to_vec()).trim_end());
        for row in &rows {
            let _ = writeln!(text, "{}", cells(row.iter().map(String::as_str).collect()).trim_end());
        }
        if self.unlisted() > 0 {
            let _ =
                writeln!(text, "... and {} more: the admin panel lists them all (filter by status).", self.unlisted());
        }
        let _ = write!(
            text,
            "\navailable = on hand - reserved (units in shoppers' carts); per day = sold in the last \
             {SALES_WINDOW_DAYS} days / {SALES_WINDOW_DAYS}; days left = available / per day.\n\
             One digest a day (digest_id {}); alerts for each item running low or out come as they happen.\n",
            self.day
        );
        text
    }
}

/// What a run of the digest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestOutcome {
    Sent,
    /// Nothing was low: no message; the day is done.
    NothingLow,
    /// The day's digest was done before (a retry, a second schedule event): nothing sent.
    AlreadySent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestReport {
    pub day: String,
    pub outcome: DigestOutcome,
    pub out_of_stock: usize,
    pub low: usize,
}

/// The day of `now` (UTC), as the digest names it.
pub fn day_of(now: EpochSeconds) -> String {
    rfc3339(now).chars().take(10).collect()
}

/// Sends the day's digest, once (see the module's documentation). `InFlight` (another run holds
/// a fresh claim) is an error, so Lambda retries the run after the claim's lease.
pub async fn send_daily_digest(
    stock: &impl StockAdmin,
    sales: &impl SalesHistory,
    log: &impl DigestLog,
    publisher: &impl DigestPublisher,
    now: EpochSeconds,
) -> Result<DigestReport, InventoryError> {
    let day = day_of(now);
    let run_id = Uuid::new_v4().to_string();
    let report = |outcome, digest: Option<&Digest>| DigestReport {
        day: day.clone(),
        outcome,
        out_of_stock: digest.map_or(0, |d| d.out_of_stock),
        low: digest.map_or(0, |d| d.low),
    };
    match log.claim_digest(&day, &run_id, now, now - LEASE_SECONDS).await? {
        DigestClaim::Claimed => {}
        DigestClaim::Done => {
            tracing::info!(day, "the day's digest was sent before; nothing to do");
            return Ok(report(DigestOutcome::AlreadySent, None));
        }
        DigestClaim::InFlight => {
            return Err(InventoryError::Unavailable {
                detail: format!("another run is sending the digest of {day}; retry after {LEASE_SECONDS} s"),
            });
        }
    }
    let sent = compose_and_publish(stock, sales, publisher, &day, now).await;
    let digest = match sent {
        Ok(digest) => digest,
        Err(err) => {
            if let Err(release) = log.release_digest(&day, &run_id).await {
                tracing::error!(day, error = %release, "could not drop the digest's claim; a retry takes it over after the lease");
            }
            return Err(err);
        }
    };
    let items = digest.as_ref().map_or(0, |d| d.lines.len());
    // Sent already: a failed confirmation is logged, not retried (a retry would send it again).
    if let Err(err) = log.confirm_digest(&day, &run_id, items, now).await {
        tracing::error!(day, error = %err, detail = ?err, "digest sent but not confirmed");
    }
    match digest {
        Some(digest) => {
            tracing::info!(day, out_of_stock = digest.out_of_stock, low = digest.low, subject = %digest.subject(),
                           "daily digest published");
            Ok(report(DigestOutcome::Sent, Some(&digest)))
        }
        None => {
            tracing::info!(day, "nothing low or out of stock: no digest today");
            Ok(report(DigestOutcome::NothingLow, None))
        }
    }
}

/// Reads every item, keeps the low and out-of-stock ones, adds their sales and publishes the digest.
/// `None`: nothing was low, nothing published.
async fn compose_and_publish(
    stock: &impl StockAdmin,
    sales: &impl SalesHistory,
    publisher: &impl DigestPublisher,
    day: &str,
    now: EpochSeconds,
) -> Result<Option<Digest>, InventoryError> {
    let mut short: BTreeMap<ProductId, Vec<StockLevel>> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = stock.scan_stock(after.as_ref(), SCAN_PAGE).await?;
        for level in page.items {
            if StockStatus::for_levels(level.available_count, level.threshold_level) != StockStatus::InStock {
                short.entry(level.product_id.clone()).or_default().push(level);
            }
        }
        after = page.last_key;
        if after.is_none() {
            break;
        }
    }
    if short.is_empty() {
        return Ok(None);
    }
    let since = now - SALES_WINDOW_DAYS * 24 * 3600;
    let with_sales = stream::iter(short).map(|(product, levels)| async move {
        let sold = sales.units_sold_since(&product, since).await?;
        Ok::<_, InventoryError>(
            levels
                .iter()
                .map(|level| DigestLine::of(level, sold.get(&level.warehouse_id).copied().unwrap_or(0)))
                .collect::<Vec<_>>(),
        )
    });
    let mut lines = Vec::new();
    for found in with_sales.buffer_unordered(CONCURRENCY).collect::<Vec<_>>().await {
        lines.extend(found?);
    }
    let digest = Digest::new(day.to_owned(), now, lines);
    publisher.publish_digest(&digest).await?;
    Ok(Some(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: &str, warehouse: &str, available: i64, sold: i64) -> DigestLine {
        DigestLine {
            product_id: ProductId::parse(product).unwrap(),
            warehouse_id: WarehouseId::parse(warehouse).unwrap(),
            status: StockStatus::for_levels(available, 5),
            available,
            stock_count: available.max(0) + 1,
            reserved_count: 1,
            threshold_level: 5,
            sold,
        }
    }

    fn order(lines: Vec<DigestLine>) -> Vec<String> {
        Digest::new("2026-11-26".into(), 0, lines)
            .lines
            .iter()
            .map(|l| format!("{}/{}", l.product_id, l.warehouse_id))
            .collect()
    }

    #[test]
    fn out_of_stock_first_then_days_left_then_no_sales() {
        let lines = vec![
            line("A", "main", 4, 0),  // no sales: last
            line("B", "main", 3, 7),  // 3 days
            line("C", "main", 0, 0),  // out, no sales: still first (0 days)
            line("D", "main", 2, 14), // 1 day
            line("E", "main", -1, 3), // out (an admin counted less than is held)
            line("F", "main", 5, 14), // 2.5 days
            line("A", "east", 1, 0),  // no sales
        ];
        assert_eq!(order(lines), ["C/main", "E/main", "D/main", "F/main", "B/main", "A/east", "A/main"]);
    }

    #[test]
    fn days_left_are_compared_exactly() {
        // 1/3 of a day against 2/6: equal, so by product; 1/3 < 3/8 though 0.3 rounds the same.
        assert_eq!(order(vec![line("B", "m", 2, 42), line("A", "m", 1, 21)]), ["A/m", "B/m"]);
        assert_eq!(order(vec![line("A", "m", 3, 56), line("B", "m", 1, 21)]), ["B/m", "A/m"]);
    }

    #[test]
    fn figures_read_as_a_manager_expects() {
        let d = line("D", "main", 2, 14);
        assert_eq!((d.per_day(), d.days_left()), (2.0, Some(1.0)));
        assert_eq!(line("C", "main", 0, 0).days_left(), Some(0.0));
        assert_eq!(line("A", "main", 4, 0).days_left(), None);
    }

    #[test]
    fn subject_and_text() {
        let digest = Digest::new(
            "2026-11-26".into(),
            1_795_000_000,
            vec![line("SKU-1", "main", 3, 7), line("SKU-2", "east", 0, 14)],
        );
        assert_eq!(digest.subject(), "Daily stock digest 2026-11-26: 1 out of stock, 1 low");
        let text = digest.text();
        assert!(text.is_ascii());
        let table: Vec<&str> = text.lines().filter(|l| l.contains(" | ")).collect();
        assert_eq!(
            table,
            [
                "# | product | warehouse | status       | available | on hand | reserved | threshold | sold 7d | per day | days left",
                "1 | SKU-2   | east      | OUT OF STOCK |         0 |       1 |        1 |         5 |      14 |     2.0 |         0",
                "2 | SKU-1   | main      | LOW          |         3 |       4 |        1 |         5 |       7 |     1.0 |       3.0",
            ]
        );
        assert!(text.contains("Figures as of 2026-11-18T11:06:40Z."), "{text}");
    }

    #[test]
    fn a_long_digest_is_cut_and_says_so() {
        let lines = (0..MAX_LINES + 2).map(|n| line(&format!("P-{n:05}"), "main", 1, 0)).collect();
        let digest = Digest::new("2026-11-26".into(), 0, lines);
        assert_eq!((digest.lines.len(), digest.low, digest.unlisted()), (MAX_LINES, MAX_LINES + 2, 2));
        assert!(digest.text().contains("... and 2 more"));
    }
}
