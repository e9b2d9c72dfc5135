// The admin panel: every product and warehouse, set/adjust/threshold with a reason, add items.
import { ApiError, apiRequest, path } from "./api";
import { currentSession, type Session, signInWithForm, signOut, SignInError } from "./auth";
import { type Config, loadConfig } from "./config";
import { ID_PATTERN, MAX_HOLD_QUANTITY, MAX_ID_LEN, MAX_REASON_LEN, MAX_SHARDS, MAX_STOCK } from "./limits";
import { LiveSocket, renderLiveIndicator, ShownSequences, type StockPush } from "./live";
import { explain } from "./messages";
import { newIdempotencyKey } from "./keys";
import { byId, el, say, show } from "./ui";

const ADMIN_GROUP = "inventory-admins";
const PAGE_SIZE = 200;

interface StockItem {
  product_id: string;
  warehouse_id: string;
  stock_count: number;
  reserved_count: number;
  available: number;
  threshold_level: number;
  max_per_cart: number;
  shards: number; // partitions the stock is split over; the figures are their sums
  status: string;
  version: number;
  sequence?: number; // the item's write counter: only grows
}

interface Figures {
  stock_count: number;
  available: number;
}

interface HistoryEntry {
  time: string;
  warehouse_id: string;
  kind: string;
  actor: string;
  reason?: string;
  before: Figures | null;
  after: Figures;
  shard?: number; // a sharded item's entry: before and after are this shard's figures
}

type SortKey =
  "product_id" | "warehouse_id" | "stock_count" | "reserved_count" | "available" | "threshold_level" | "shards" | "status";

let config: Config;
let rows: StockItem[] = [];
let sortKey: SortKey = "product_id";
let sortAscending = true;
let editing: { product_id: string; warehouse_id: string; version: number } | null = null;
// Every product's pushes while signed in as an admin and the socket is open.
let live: LiveSocket | null = null;
// Per item (product and warehouse): the list and the pushes both carry each item's sequence, so a
// list loaded while pushes arrived never takes a row back to older figures.
const shown = new ShownSequences();
const itemKey = (item: { product_id: string; warehouse_id: string }): string => `${item.product_id}\n${item.warehouse_id}`;

const page = {
  status: byId<HTMLParagraphElement>("page-status"),
  who: byId<HTMLSpanElement>("who"),
  signoutButton: byId<HTMLButtonElement>("signout"),
  overlay: byId<HTMLDivElement>("signin-overlay"),
  signinReason: byId<HTMLParagraphElement>("signin-reason"),
  signinForm: byId<HTMLFormElement>("signin-form"),
  signinStatus: byId<HTMLParagraphElement>("signin-status"),
  refused: byId<HTMLElement>("refused"),
  refusedText: byId<HTMLParagraphElement>("refused-text"),
  workspace: byId<HTMLElement>("workspace"),
  statusFilter: byId<HTMLSelectElement>("status-filter"),
  search: byId<HTMLInputElement>("search"),
  tableStatus: byId<HTMLParagraphElement>("table-status"),
  live: byId<HTMLParagraphElement>("live-indicator"),
  tableRows: byId<HTMLTableSectionElement>("stock-rows"),
  editor: byId<HTMLElement>("editor"),
  editorHeading: byId<HTMLHeadingElement>("editor-heading"),
  editorCurrent: byId<HTMLParagraphElement>("editor-current"),
  editForm: byId<HTMLFormElement>("edit-form"),
  editAmount: byId<HTMLInputElement>("edit-amount"),
  editThreshold: byId<HTMLInputElement>("edit-threshold"),
  editMaxPerCart: byId<HTMLInputElement>("edit-max-per-cart"),
  editShards: byId<HTMLInputElement>("edit-shards"),
  editReason: byId<HTMLInputElement>("edit-reason"),
  editStatus: byId<HTMLParagraphElement>("edit-status"),
  addForm: byId<HTMLFormElement>("add-form"),
  addStatus: byId<HTMLParagraphElement>("add-status"),
  history: byId<HTMLElement>("history"),
  historyHeading: byId<HTMLHeadingElement>("history-heading"),
  historyStatus: byId<HTMLParagraphElement>("history-status"),
  historyRows: byId<HTMLTableSectionElement>("history-rows"),
  historyMore: byId<HTMLButtonElement>("history-more"),
};

const CHANGE_WORDS: Record<string, string> = {
  set: "Stock set", adjust: "Stock adjusted", threshold: "Threshold changed", hold: "Held (cart)",
  released: "Released", committed: "Sold", expired: "Hold expired", reconciled: "Reconciled (counters repaired)",
  limit: "Per-cart limit changed", sharding: "Shards changed", rebalanced: "Rebalanced between shards",
};

const STATUS_WORDS: Record<string, string> = { IN_STOCK: "In stock", LOW_STOCK: "Low stock", OUT_OF_STOCK: "Out of stock" };

// --- session -------------------------------------------------------------------------------------

function askToSignIn(reason: string): void {
  page.signinReason.textContent = reason;
  say(page.signinStatus, "");
  show(page.overlay, true);
  byId<HTMLInputElement>("signin-email").focus();
}

/** Runs an API action with a live session. Without one (or when the API says the token has
 *  expired) the sign-in dialog opens over the page, so nothing typed is lost. */
async function withSession<T>(action: (session: Session) => Promise<T>): Promise<T | undefined> {
  const session = currentSession();
  if (!session) {
    askToSignIn("Your session has ended. Sign in again: what you typed is still there.");
    return undefined;
  }
  try {
    return await action(session);
  } catch (error) {
    if (error instanceof ApiError && error.code === "UNAUTHORIZED") {
      stopLive();
      signOut();
      askToSignIn("Your session has ended. Sign in again: what you typed is still there.");
      return undefined;
    }
    if (error instanceof ApiError && error.code === "FORBIDDEN") {
      refuse(session);
      return undefined;
    }
    throw error;
  }
}

function refuse(session: Session): void {
  page.refusedText.textContent =
    `You are signed in as ${session.username}, who is not in the ${ADMIN_GROUP} group. ` +
    "Ask an administrator to add you to it, or sign out and sign in with an admin account.";
  show(page.refused, true);
  show(page.workspace, false);
}

async function enter(session: Session): Promise<void> {
  page.who.textContent = session.username;
  show(page.who, true);
  show(page.signoutButton, true);
  if (!session.groups.includes(ADMIN_GROUP)) {
    refuse(session);
    return;
  }
  show(page.refused, false);
  show(page.workspace, true);
  startLive();
  await loadRows();
}

async function onSignIn(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const button = page.signinForm.querySelector("button")!;
  button.disabled = true;
  try {
    const session = await signInWithForm(config);
    show(page.overlay, false);
    if (!page.editor.hidden) say(page.editStatus, "Signed in again. Your change is not saved yet: press Save.", "info");
    await enter(session);
  } catch (error) {
    say(page.signinStatus, error instanceof SignInError ? error.message : explain(error), "error");
  } finally {
    button.disabled = false;
  }
}

// --- the table -------------------------------------------------------------------------------------

async function loadRows(): Promise<void> {
  say(page.tableStatus, "Loading…");
  try {
    const loaded = await withSession(async (session) => {
      const items: StockItem[] = [];
      let cursor: string | null = null;
      do {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (page.statusFilter.value) query.set("status", page.statusFilter.value);
        if (cursor) query.set("cursor", cursor);
        const result: { items: StockItem[]; next_cursor: string | null } = await apiRequest(config.apiUrl, "GET",
          `/inventory?${query}`, { token: session.accessToken });
        items.push(...result.items);
        cursor = result.next_cursor;
      } while (cursor);
      return items;
    });
    if (loaded === undefined) return;
    // A row read before a push that is already shown keeps the push's figures.
    rows = loaded.map((row) => (shown.accept(itemKey(row), row.sequence) ? row : rows.find((r) => itemKey(r) === itemKey(row)) ?? row));
    render();
  } catch (error) {
    say(page.tableStatus, `Couldn't load stock: ${explain(error)}`, "error");
  }
}

function render(): void {
  const needle = page.search.value.trim().toLowerCase();
  const visible = rows
    .filter((row) => !needle || row.product_id.toLowerCase().includes(needle) || row.warehouse_id.toLowerCase().includes(needle))
    .sort((a, b) => {
      const [x, y] = [a[sortKey], b[sortKey]];
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return (sortAscending ? order : -order) || a.product_id.localeCompare(b.product_id) || a.warehouse_id.localeCompare(b.warehouse_id);
    });
  page.tableRows.replaceChildren(...visible.map(rowElement));
  for (const header of document.querySelectorAll<HTMLTableCellElement>("#stock-table th[data-key]")) {
    header.setAttribute("aria-sort", header.dataset.key === sortKey ? (sortAscending ? "ascending" : "descending") : "none");
  }
  say(page.tableStatus, `${visible.length} of ${rows.length} items shown. Updated ${new Date().toLocaleTimeString()}.`);
}

function rowElement(row: StockItem): HTMLTableRowElement {
  const change = el("button", { type: "button", "aria-label": `Change ${row.product_id} in ${row.warehouse_id}` }, "Change");
  change.addEventListener("click", () => openEditor(row));
  const past = el("button", { type: "button", "aria-label": `History of ${row.product_id}` }, "History");
  past.addEventListener("click", () => void openHistory(row.product_id));
  return el("tr", { "data-product": row.product_id, "data-warehouse": row.warehouse_id },
    el("th", { scope: "row" }, row.product_id),
    el("td", {}, row.warehouse_id),
    el("td", { class: "num", "data-column": "stock_count" }, String(row.stock_count)),
    el("td", { class: "num", "data-column": "reserved_count" }, String(row.reserved_count)),
    el("td", { class: "num", "data-column": "available" }, String(row.available)),
    el("td", { class: "num", "data-column": "threshold_level" }, String(row.threshold_level)),
    el("td", { class: "num", "data-column": "shards" }, String(row.shards)),
    el("td", {}, el("span", { class: "status", "data-status": row.status }, STATUS_WORDS[row.status] ?? row.status)),
    el("td", { class: "actions" }, change, past));
}

function sortBy(key: SortKey): void {
  sortAscending = key === sortKey ? !sortAscending : true;
  sortKey = key;
  render();
}

// --- live updates ----------------------------------------------------------------------------------

function renderLive(isLive: boolean): void {
  renderLiveIndicator(page.live, isLive, "Not live: Reload shows the latest");
}

/** The socket URL with the signed-in admin's access token (a browser's WebSocket sends no
 *  Authorization header, so it goes in the URL; the $connect authorizer verifies it); null (no
 *  socket) once the session has ended. */
function liveUrl(): string | null {
  const session = currentSession();
  return session ? `${config.websocketUrl}?token=${encodeURIComponent(session.accessToken)}` : null;
}

/** Every product's pushes, when the stack has a WebSocket API; after every (re)connect the list is
 *  loaded again, for what changed while the socket was down. */
function startLive(): void {
  stopLive();
  if (!config.websocketUrl) return;
  live = new LiveSocket(liveUrl, { onLive: renderLive, onStock: showPush, onReconnect: () => void loadRows() });
  live.subscribeAll();
}

function stopLive(): void {
  live?.close();
  live = null;
  renderLive(false);
}

/** A push updates its product's rows where they stand: no re-sort, so nothing moves under the
 *  pointer. A row leaves (or joins) a table filtered by status as a reload would have it. The editor
 *  keeps the version it opened with: a change saved from it is still checked against what the admin saw. */
function showPush(push: StockPush): void {
  let reshaped = false; // rows joined or left the table: it is drawn anew
  for (const figures of push.warehouses) {
    const item: StockItem = { ...figures, product_id: push.product_id };
    if (!shown.accept(itemKey(item), item.sequence)) continue; // older than the row shown
    const index = rows.findIndex((row) => row.product_id === item.product_id && row.warehouse_id === item.warehouse_id);
    const wanted = !page.statusFilter.value || item.status === page.statusFilter.value;
    if (index >= 0 && wanted) {
      rows[index] = item;
      replaceRow(item);
    } else if (index >= 0) {
      rows.splice(index, 1);
      reshaped = true;
    } else if (wanted) {
      rows.push(item); // a warehouse added elsewhere, or a row that now meets the filter
      reshaped = true;
    }
  }
  if (reshaped) render();
}

/** The table row of `item`, if the search shows it. */
function shownRow(item: StockItem): HTMLTableRowElement | null {
  return page.tableRows.querySelector<HTMLTableRowElement>(
    `tr[data-product="${CSS.escape(item.product_id)}"][data-warehouse="${CSS.escape(item.warehouse_id)}"]`);
}

/** Draws the row of `item` anew where it stands, the focus kept on the same control. */
function replaceRow(item: StockItem): void {
  const old = shownRow(item);
  if (!old) return;
  const focused = old.contains(document.activeElement) ? document.activeElement?.getAttribute("aria-label") : null;
  const fresh = rowElement(item);
  old.replaceWith(fresh);
  if (focused) fresh.querySelector<HTMLElement>(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
}

// --- changing an item -------------------------------------------------------------------------------

function shardCount(shards: number): string {
  return shards === 1 ? "1 shard" : `${shards} shards`;
}

function describe(row: StockItem): string {
  return `Now: ${row.stock_count} on hand, ${row.reserved_count} reserved, ${row.available} available, ` +
    `threshold ${row.threshold_level}, ${shardCount(row.shards)}, ` +
    `${STATUS_WORDS[row.status] ?? row.status} (version ${row.version}).`;
}

function openEditor(row: StockItem): void {
  const same = editing?.product_id === row.product_id && editing.warehouse_id === row.warehouse_id;
  editing = { product_id: row.product_id, warehouse_id: row.warehouse_id, version: row.version };
  page.editorHeading.textContent = `Change ${row.product_id} in ${row.warehouse_id}`;
  page.editorCurrent.textContent = describe(row);
  if (!same) {
    page.editForm.reset();
    page.editThreshold.value = String(row.threshold_level);
    page.editMaxPerCart.value = String(row.max_per_cart);
    page.editShards.value = String(row.shards);
    say(page.editStatus, "");
  }
  show(page.editor, true);
  page.editor.scrollIntoView({ block: "nearest" });
  page.editAmount.focus();
}

function wholeNumber(input: HTMLInputElement, label: string, min: number, max: number): number {
  const value = Number(input.value);
  if (input.value.trim() === "" || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${label} must be a whole number from ${min} to ${max}.`);
  }
  return value;
}

function editBody(): Record<string, unknown> {
  if (!editing) throw new RangeError("Choose an item in the table first.");
  const row = rows.find((r) => r.product_id === editing!.product_id && r.warehouse_id === editing!.warehouse_id);
  const mode = new FormData(page.editForm).get("mode");
  const body: Record<string, unknown> = { warehouse_id: editing.warehouse_id, expected_version: editing.version };
  if (mode === "set") body.stock_count = wholeNumber(page.editAmount, "The new stock", 0, MAX_STOCK);
  if (mode === "adjust") {
    const delta = wholeNumber(page.editAmount, "The adjustment", -MAX_STOCK, MAX_STOCK);
    if (delta === 0) throw new RangeError("An adjustment of 0 changes nothing.");
    body.adjust_by = delta;
  }
  const threshold = wholeNumber(page.editThreshold, "The threshold", 0, MAX_STOCK);
  if (threshold !== row?.threshold_level) body.threshold_level = threshold;
  const perCart = wholeNumber(page.editMaxPerCart, "Most per cart", 1, MAX_HOLD_QUANTITY);
  if (perCart !== row?.max_per_cart) body.max_per_cart = perCart;
  const shards = wholeNumber(page.editShards, "Shards", 1, MAX_SHARDS);
  if (shards !== row?.shards) body.shards = shards;
  if (!["stock_count", "adjust_by", "threshold_level", "max_per_cart", "shards"].some((field) => field in body)) {
    throw new RangeError("Nothing to change: set or adjust the stock, or change the threshold, the most per cart or the shards.");
  }
  const reason = page.editReason.value.trim();
  if (!reason || reason.length > MAX_REASON_LEN) throw new RangeError(`Give a reason (up to ${MAX_REASON_LEN} characters).`);
  body.reason = reason;
  return body;
}

// One Idempotency-Key per change: pressing Save again after an answer was lost repeats the same
// change, which the API applies once; any other change gets a new key.
let pendingChange: { body: string; key: string } | null = null;

function keyFor(target: string, body: Record<string, unknown>): string {
  const text = JSON.stringify([target, body]);
  if (pendingChange?.body !== text) pendingChange = { body: text, key: newIdempotencyKey() };
  return pendingChange.key;
}

async function saveEdit(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  let body: Record<string, unknown>;
  try {
    body = editBody();
  } catch (error) {
    say(page.editStatus, (error as Error).message, "error");
    return;
  }
  const target = editing!;
  const idempotencyKey = keyFor(target.product_id, body);
  try {
    const saved = await withSession((session) =>
      apiRequest<StockItem>(config.apiUrl, "PUT", path("inventory", target.product_id),
        { body, token: session.accessToken, idempotencyKey }));
    if (!saved) return;
    pendingChange = null;
    say(page.status, `Saved ${saved.product_id} in ${saved.warehouse_id}: ${saved.stock_count} on hand, ` +
      `${saved.available} available, ${STATUS_WORDS[saved.status] ?? saved.status}, ${shardCount(saved.shards)}.`, "ok");
    editing = null;
    page.editForm.reset();
    show(page.editor, false);
    await loadRows();
  } catch (error) {
    if (error instanceof ApiError && error.code === "VERSION_CONFLICT") {
      await loadRows();
      const current = rows.find((r) => r.product_id === target.product_id && r.warehouse_id === target.warehouse_id);
      if (current && editing) {
        editing.version = current.version;
        page.editorCurrent.textContent = describe(current);
      }
      say(page.editStatus, "Someone else changed this item while you were editing it, so your change was not saved. " +
        "The numbers above are the current ones: check your change and press Save again.", "error");
      return;
    }
    say(page.editStatus, explain(error), "error");
  }
}

async function addItem(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const product = byId<HTMLInputElement>("add-product").value.trim();
  const warehouse = byId<HTMLInputElement>("add-warehouse").value.trim();
  const idRule = new RegExp(`^${ID_PATTERN}$`);
  let body: Record<string, unknown>;
  try {
    for (const [label, id] of [["Product id", product], ["Warehouse id", warehouse]]) {
      if (!idRule.test(id) || id.length > MAX_ID_LEN) {
        throw new RangeError(`${label}: use letters, digits and - _ . : (up to ${MAX_ID_LEN} characters).`);
      }
    }
    const reason = byId<HTMLInputElement>("add-reason").value.trim();
    if (!reason || reason.length > MAX_REASON_LEN) throw new RangeError(`Give a reason (up to ${MAX_REASON_LEN} characters).`);
    body = {
      warehouse_id: warehouse,
      stock_count: wholeNumber(byId("add-stock"), "On hand", 0, MAX_STOCK),
      threshold_level: wholeNumber(byId("add-threshold"), "The threshold", 0, MAX_STOCK),
      reason,
      expected_version: 0, // only a new item: an existing one is changed in the table
    };
  } catch (error) {
    say(page.addStatus, (error as Error).message, "error");
    return;
  }
  const idempotencyKey = keyFor(product, body);
  try {
    const added = await withSession((session) =>
      apiRequest<StockItem>(config.apiUrl, "PUT", path("inventory", product),
        { body, token: session.accessToken, idempotencyKey }));
    if (!added) return;
    pendingChange = null;
    say(page.addStatus, `Added ${added.product_id} in ${added.warehouse_id} with ${added.stock_count} on hand.`, "ok");
    page.search.value = added.product_id;
    await loadRows();
  } catch (error) {
    say(page.addStatus, error instanceof ApiError && error.code === "VERSION_CONFLICT"
      ? `${product} in ${warehouse} already exists: change it in the table instead.`
      : explain(error), "error");
  }
}

// --- history -----------------------------------------------------------------------------------------

let historyOf: { product: string; cursor: string | null } | null = null;

function figures(f: Figures | null): string {
  return f ? `${f.stock_count}` : "–";
}

/** Which shard a sharded item's entry is of: its figures are that shard's, not the item's total. */
function shardNote(shard: number | undefined): Node | null {
  if (shard === undefined) return null;
  return el("span", { class: "muted small", title: "The figures of this entry are this shard's; the table shows the item's sums." },
    ` · shard ${shard}`);
}

async function openHistory(product: string, more = false): Promise<void> {
  if (!more) {
    historyOf = { product, cursor: null };
    page.historyRows.replaceChildren();
  }
  page.historyHeading.textContent = `History of ${product}`;
  show(page.history, true);
  say(page.historyStatus, "Loading…");
  try {
    const query = new URLSearchParams({ limit: "25" });
    if (more && historyOf?.cursor) query.set("cursor", historyOf.cursor);
    const result = await withSession((session) =>
      apiRequest<{ items: HistoryEntry[]; next_cursor: string | null }>(config.apiUrl, "GET",
        `${path("inventory", product, "history")}?${query}`, { token: session.accessToken }));
    if (!result) return;
    historyOf = { product, cursor: result.next_cursor };
    page.historyRows.append(...result.items.map((entry) => el("tr", { "data-kind": entry.kind },
      el("td", {}, new Date(entry.time).toLocaleString()),
      el("td", {}, entry.warehouse_id),
      el("td", {}, CHANGE_WORDS[entry.kind] ?? entry.kind, shardNote(entry.shard)),
      el("td", {}, entry.actor),
      el("td", { class: "num" }, `${figures(entry.before)} → ${entry.after.stock_count}`),
      el("td", { class: "num" }, `${entry.before ? entry.before.available : "–"} → ${entry.after.available}`),
      el("td", {}, entry.reason ?? ""))));
    show(page.historyMore, result.next_cursor !== null);
    say(page.historyStatus, page.historyRows.children.length === 0 ? "No changes recorded." : "");
    page.history.scrollIntoView({ block: "nearest" });
  } catch (error) {
    say(page.historyStatus, `Couldn't load the history: ${explain(error)}`, "error");
  }
}

// --- start -------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  try {
    config = await loadConfig();
  } catch (error) {
    say(page.status, String((error as Error).message), "error");
    return;
  }
  for (const input of [byId<HTMLInputElement>("add-product"), byId<HTMLInputElement>("add-warehouse")]) {
    input.maxLength = MAX_ID_LEN;
    input.pattern = ID_PATTERN;
  }
  page.editReason.maxLength = MAX_REASON_LEN;
  page.editShards.max = String(MAX_SHARDS);
  renderLive(false);
  byId<HTMLInputElement>("add-reason").maxLength = MAX_REASON_LEN;

  page.signinForm.addEventListener("submit", (event) => void onSignIn(event));
  page.signoutButton.addEventListener("click", () => {
    stopLive();
    signOut();
    window.location.reload();
  });
  byId<HTMLFormElement>("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    void loadRows();
  });
  page.statusFilter.addEventListener("change", () => void loadRows());
  page.search.addEventListener("input", render);
  for (const header of document.querySelectorAll<HTMLTableCellElement>("#stock-table th[data-key]")) {
    header.querySelector("button")!.addEventListener("click", () => sortBy(header.dataset.key as SortKey));
  }
  page.editForm.addEventListener("submit", (event) => void saveEdit(event));
  byId<HTMLButtonElement>("edit-cancel").addEventListener("click", () => {
    editing = null;
    show(page.editor, false);
  });
  page.addForm.addEventListener("submit", (event) => void addItem(event));
  page.historyMore.addEventListener("click", () => historyOf && void openHistory(historyOf.product, true));
  byId<HTMLButtonElement>("history-close").addEventListener("click", () => show(page.history, false));

  const session = currentSession();
  if (session) await enter(session);
  else askToSignIn("Inventory admins sign in with their shop account.");
}

void start();
