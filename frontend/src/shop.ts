// The product page: availability kept current, holds in a cart with a countdown, checkout.
import { ApiError, apiRequest, path } from "./api";
import { currentSession, signInWithForm, signOut, SignInError } from "./auth";
import { type Config, loadConfig } from "./config";
import { ID_PATTERN, MAX_EMAIL_LEN, MAX_HOLD_QUANTITY, MAX_ID_LEN } from "./limits";
import { LiveSocket, renderLiveIndicator, ShownSequences, type StockStatus } from "./live";
import { explain } from "./messages";
import { byId, countdown, el, say, secondsAgo, show } from "./ui";
import { cartToken, newIdempotencyKey } from "./keys";

interface WarehouseAvailability {
  warehouse_id: string;
  available: number;
  max_per_cart?: number;
  threshold_level: number;
  status: string;
}

interface ProductAvailability {
  product_id: string;
  available: number;
  threshold_level: number;
  status: StockStatus;
  sequence?: number; // only grows for a product; absent from an older API
  warehouses: WarehouseAvailability[];
}

interface Reservation {
  reservation_id: string;
  product_id: string;
  warehouse_id: string;
  quantity: number;
  expires_at: string;
  status: string;
}

type LineState = "held" | "expired" | "bought" | "removed";

interface CartLine {
  reservation_id: string;
  product_id: string;
  name: string;
  quantity: number;
  expires_at: number; // epoch ms
  state: LineState;
  note?: string;
}

const CART_KEY = "inventory.cart";

let config: Config;
let product: ProductAvailability | null = null;
let productId = "";
let fetchedAt = 0;
let fetching = false;
// Asked for while a GET was under way: that answer may predate the reason for asking, so GET again.
let fetchAgain = false;
// Pushes while the socket is open; null when the stack has no WebSocket API (the page polls).
let live: LiveSocket | null = null;
const LIVE_SAFETY_REFRESH_SECONDS = 60;
const shown = new ShownSequences();
// One key per "add to cart" intent: a double click or a retry after a lost answer sends the same
// key, so the API returns the same hold instead of placing a second one.
let intentKey: string | null = null;
// The API can answer before a double click's second click lands, so the key outlives a success
// by this long; a click after it is a new intent (another hold).
const SAME_INTENT_MS = 1000;

const page = {
  select: byId<HTMLSelectElement>("product-select"),
  idInput: byId<HTMLInputElement>("product-id"),
  status: byId<HTMLParagraphElement>("page-status"),
  card: byId<HTMLElement>("product"),
  name: byId<HTMLHeadingElement>("product-name"),
  sku: byId<HTMLSpanElement>("product-sku"),
  availability: byId<HTMLParagraphElement>("availability"),
  warehouses: byId<HTMLUListElement>("warehouses"),
  updated: byId<HTMLParagraphElement>("updated"),
  live: byId<HTMLParagraphElement>("live-indicator"),
  quantity: byId<HTMLInputElement>("quantity"),
  addButton: byId<HTMLButtonElement>("add-button"),
  addStatus: byId<HTMLParagraphElement>("add-status"),
  notifyForm: byId<HTMLFormElement>("notify-form"),
  notifyEmail: byId<HTMLInputElement>("notify-email"),
  notifyButton: byId<HTMLButtonElement>("notify-button"),
  notifyStatus: byId<HTMLParagraphElement>("notify-status"),
  cartEmpty: byId<HTMLParagraphElement>("cart-empty"),
  cartLines: byId<HTMLUListElement>("cart-lines"),
  signinForm: byId<HTMLFormElement>("signin-form"),
  signedIn: byId<HTMLParagraphElement>("signed-in"),
  checkoutButton: byId<HTMLButtonElement>("checkout-button"),
  checkoutStatus: byId<HTMLParagraphElement>("checkout-status"),
  checkoutResults: byId<HTMLUListElement>("checkout-results"),
};

// --- availability ------------------------------------------------------------------------------

/** How shops say it: "In stock", "Only 3 left", "Out of stock". */
function availabilityLabel(available: number, status: string): string {
  if (available <= 0 || status === "OUT_OF_STOCK") return "Out of stock";
  if (status === "LOW_STOCK") return `Only ${available} left`;
  return "In stock";
}

function productName(id: string): string {
  return config.products.find((entry) => entry.product_id === id)?.name ?? id;
}

/** A hold comes from one warehouse, so one hold can take at most what the best-stocked one has. */
// The most one hold may take: what the best warehouse has for sale, within the product's units per
// cart less what this cart already holds of it (the API refuses more, CART_UNITS_LIMIT).
function mostPerHold(availability: ProductAvailability): number {
  const best = Math.max(0, ...availability.warehouses.map((warehouse) => warehouse.available));
  const perCart = Math.min(...availability.warehouses.map((warehouse) => warehouse.max_per_cart ?? MAX_HOLD_QUANTITY));
  const inCart = cart.filter((line) => line.state === "held" && line.product_id === availability.product_id)
    .reduce((sum, line) => sum + line.quantity, 0);
  return Math.max(0, Math.min(best, MAX_HOLD_QUANTITY, perCart - inCart));
}

async function openProduct(id: string): Promise<void> {
  const trimmed = id.trim();
  if (!new RegExp(`^${ID_PATTERN}$`).test(trimmed) || trimmed.length > MAX_ID_LEN) {
    say(page.status, `"${trimmed}" is not a product id: use letters, digits and - _ . : (up to ${MAX_ID_LEN}).`, "error");
    return;
  }
  productId = trimmed;
  product = null;
  shown.forget();
  live?.subscribe([productId]);
  intentKey = null;
  say(page.addStatus, "");
  say(page.notifyStatus, "");
  const url = new URL(window.location.href);
  url.searchParams.set("product", productId);
  history.replaceState(null, "", url);
  page.select.value = config.products.some((entry) => entry.product_id === productId) ? productId : "";
  await refresh();
}

async function refresh(): Promise<void> {
  if (!productId) return;
  if (fetching) {
    fetchAgain = true;
    return;
  }
  fetching = true;
  const id = productId;
  try {
    showAvailability(await apiRequest<ProductAvailability>(config.apiUrl, "GET", path("inventory", id)));
  } catch (error) {
    if (id !== productId) return; // about a product no longer open
    if (error instanceof ApiError && error.code === "PRODUCT_NOT_FOUND") {
      product = null;
      show(page.card, false);
      say(page.status, `We don't have a product with id "${productId}".`, "error");
    } else if (product) {
      say(page.status, `Couldn't update availability: ${explain(error)}`, "error");
    } else {
      say(page.status, explain(error), "error");
    }
  } finally {
    fetching = false;
    if (fetchAgain) {
      fetchAgain = false;
      void refresh();
    }
  }
}

/** The one way figures reach the page, a GET's answer and a push alike: those of the open product,
 *  unless they are older than the ones shown. */
function showAvailability(figures: ProductAvailability): void {
  if (figures.product_id !== productId || !shown.accept(figures.product_id, figures.sequence)) return;
  product = figures;
  fetchedAt = Date.now();
  say(page.status, "");
  renderProduct();
}

function renderProduct(): void {
  if (!product) return;
  show(page.card, true);
  page.name.textContent = productName(product.product_id);
  page.sku.textContent = product.product_id;
  page.availability.textContent = availabilityLabel(product.available, product.status);
  page.availability.dataset.status = product.available <= 0 ? "OUT_OF_STOCK" : product.status;
  page.card.dataset.sequence = String(product.sequence ?? 0);
  page.warehouses.replaceChildren(
    ...(product.warehouses.length > 1
      ? product.warehouses.map((warehouse) =>
          el("li", {}, `${warehouse.warehouse_id}: ${warehouse.available > 0 ? `${warehouse.available} available` : "none"}`),
        )
      : []),
  );
  const most = mostPerHold(product);
  page.quantity.max = String(Math.max(1, most));
  page.quantity.disabled = most < 1;
  page.addButton.disabled = most < 1;
  // "Email me when it's back": offered only while the product as a whole is out of stock.
  show(page.notifyForm, product.available <= 0);
  renderUpdated();
}

// --- back-in-stock sign-up -----------------------------------------------------------------------

async function signUpForBackInStock(): Promise<void> {
  const email = page.notifyEmail.value.trim();
  if (!email || email.length > MAX_EMAIL_LEN || !page.notifyEmail.checkValidity()) {
    say(page.notifyStatus, "Please enter an e-mail address like name@example.com.", "error");
    return;
  }
  page.notifyButton.disabled = true;
  try {
    await apiRequest(config.apiUrl, "POST", path("inventory", productId, "back-in-stock"), {
      body: { email },
      cartToken: cartToken(),
    });
    page.notifyEmail.value = "";
    say(page.notifyStatus, "Check your inbox to confirm: we'll e-mail you once when it's back.", "ok");
  } catch (error) {
    say(page.notifyStatus, explain(error), "error");
    if (error instanceof ApiError && error.code === "PRODUCT_IN_STOCK") void refresh();
  } finally {
    page.notifyButton.disabled = false;
  }
}

function renderUpdated(): void {
  if (product) page.updated.textContent = `Updated ${secondsAgo(fetchedAt)}`;
}

function renderLive(isLive: boolean): void {
  renderLiveIndicator(page.live, isLive, `Updates every ${config.refreshSeconds} s`);
}

/** Pushes from the stack's WebSocket API, when it has one; after every (re)connect one GET catches up. */
function startLive(): void {
  renderLive(false);
  if (!config.websocketUrl) return;
  live = new LiveSocket(() => config.websocketUrl, {
    onLive: renderLive,
    onStock: showAvailability,
    onReconnect: () => void refresh(),
  });
}

// --- cart ----------------------------------------------------------------------------------------

function loadCart(): CartLine[] {
  try {
    const stored = JSON.parse(localStorage.getItem(CART_KEY) ?? "[]") as CartLine[];
    return Array.isArray(stored) ? stored : [];
  } catch {
    return [];
  }
}

let cart: CartLine[] = [];

function saveCart(): void {
  localStorage.setItem(CART_KEY, JSON.stringify(cart));
}

async function addToCart(): Promise<void> {
  if (!product) return;
  const quantity = Number(page.quantity.value);
  const most = mostPerHold(product);
  if (!Number.isInteger(quantity) || quantity < 1) {
    say(page.addStatus, "Choose a quantity of at least 1.", "error");
    return;
  }
  if (quantity > most) {
    say(page.addStatus, most > 0 ? `Only ${most} left: choose ${most} or fewer.` : "Sorry, this is out of stock.", "error");
    return;
  }
  intentKey ??= newIdempotencyKey();
  const key = intentKey;
  page.addButton.disabled = true;
  say(page.addStatus, "Adding to your cart…");
  try {
    const hold = await apiRequest<Reservation>(config.apiUrl, "POST", path("inventory", product.product_id, "reserve"), {
      body: { quantity },
      idempotencyKey: key,
      cartToken: cartToken(),
    });
    if (hold.status !== "ACTIVE") {
      // A repeated key answers the hold it placed as it is now: one that lapsed or ended holds nothing.
      intentKey = null;
      say(page.addStatus, "That hold has already ended. Press Add to cart again to hold the item anew.", "error");
      return;
    }
    if (!cart.some((line) => line.reservation_id === hold.reservation_id)) {
      cart.push({
        reservation_id: hold.reservation_id,
        product_id: hold.product_id,
        name: productName(hold.product_id),
        quantity: hold.quantity,
        expires_at: Date.parse(hold.expires_at),
        state: "held",
      });
      saveCart();
    }
    setTimeout(() => {
      if (intentKey === key) intentKey = null;
    }, SAME_INTENT_MS);
    say(page.addStatus, `Added ${hold.quantity} to your cart. We hold them for you until the timer runs out.`, "ok");
    renderCart();
  } catch (error) {
    // Keep the key when the answer may have been lost, so trying again cannot hold twice.
    if (!(error instanceof ApiError) || (error.status >= 400 && error.status < 500)) intentKey = null;
    say(page.addStatus, explain(error), "error");
  } finally {
    page.addButton.disabled = false;
    await refresh();
  }
}

async function removeLine(line: CartLine): Promise<void> {
  if (line.state !== "held") {
    cart = cart.filter((other) => other !== line);
    saveCart();
    renderCart();
    return;
  }
  try {
    await apiRequest(config.apiUrl, "DELETE", path("inventory", line.product_id, "reservations", line.reservation_id),
      { cartToken: cartToken() });
    cart = cart.filter((other) => other !== line);
  } catch (error) {
    const code = error instanceof ApiError ? error.code : "";
    if (code === "RESERVATION_EXPIRED") line.state = "expired";
    else if (code === "RESERVATION_COMMITTED") line.state = "bought";
    else if (code === "RESERVATION_RELEASED" || code === "RESERVATION_NOT_FOUND") line.state = "removed";
    line.note = explain(error);
  }
  saveCart();
  renderCart();
  await refresh();
}

function expireLapsedLines(): boolean {
  let changed = false;
  for (const line of cart) {
    if (line.state === "held" && line.expires_at <= Date.now()) {
      line.state = "expired";
      line.note = "Expired: the items went back on sale. Add it again if you still want it.";
      changed = true;
    }
  }
  if (changed) saveCart();
  return changed;
}

function lineText(line: CartLine): string {
  switch (line.state) {
    case "held":
      return `Held for ${countdown((line.expires_at - Date.now()) / 1000)}`;
    case "expired":
      return line.note ?? "Expired";
    case "bought":
      return "Bought";
    case "removed":
      return line.note ?? "Removed";
  }
}

function renderCart(): void {
  show(page.cartEmpty, cart.length === 0);
  page.cartLines.replaceChildren(
    ...cart.map((line) => {
      const remove = el("button", { type: "button", class: "link", "aria-label": `Remove ${line.name} from the cart` },
        line.state === "held" ? "Remove" : "Dismiss");
      remove.addEventListener("click", () => void removeLine(line));
      return el("li", { class: "cart-line", "data-state": line.state, "data-reservation": line.reservation_id },
        el("span", { class: "what" }, `${line.quantity} × ${line.name}`),
        el("span", { class: "when", "data-role": "countdown" }, lineText(line)),
        remove);
    }),
  );
  const held = cart.some((line) => line.state === "held");
  show(page.checkoutButton, held);
  const session = currentSession();
  show(page.signedIn, session !== null);
  page.signedIn.textContent = session ? `Signed in as ${session.username}` : "";
}

function tickCountdowns(): void {
  if (expireLapsedLines()) {
    renderCart();
    void refresh();
    return;
  }
  for (const line of cart) {
    if (line.state !== "held") continue;
    const node = page.cartLines.querySelector(`[data-reservation="${line.reservation_id}"] [data-role="countdown"]`);
    if (node) node.textContent = lineText(line);
  }
}

// --- checkout ------------------------------------------------------------------------------------

async function checkout(): Promise<void> {
  expireLapsedLines();
  const session = currentSession();
  if (!session) {
    show(page.signinForm, true);
    show(page.checkoutButton, false);
    byId<HTMLInputElement>("signin-email").focus();
    return;
  }
  const lines = cart.filter((line) => line.state === "held");
  page.checkoutButton.disabled = true;
  say(page.checkoutStatus, "Checking out…");
  const results: HTMLLIElement[] = [];
  for (const line of lines) {
    try {
      await apiRequest(config.apiUrl, "PUT", path("inventory", line.product_id), {
        body: { reservation_id: line.reservation_id },
        token: session.accessToken,
        cartToken: cartToken(),
      });
      line.state = "bought";
      results.push(el("li", { "data-outcome": "bought" }, `Bought ${line.quantity} × ${line.name}`));
    } catch (error) {
      const code = error instanceof ApiError ? error.code : "";
      if (code === "UNAUTHORIZED") {
        signOut();
        show(page.signinForm, true);
        results.push(el("li", { "data-outcome": "failed" }, `${line.name}: ${explain(error)}`));
        break;
      }
      if (code === "RESERVATION_EXPIRED") line.state = "expired";
      if (code === "RESERVATION_COMMITTED") line.state = "bought";
      line.note = explain(error);
      results.push(el("li", { "data-outcome": line.state === "bought" ? "bought" : "failed" }, `Not bought: ${line.name}: ${line.note}`));
    }
  }
  saveCart();
  page.checkoutResults.replaceChildren(...results);
  const bought = results.filter((item) => item.dataset.outcome === "bought").length;
  say(page.checkoutStatus, bought === results.length ? "Thank you! Your order is complete." : `${bought} of ${results.length} items bought; see below.`,
    bought === results.length ? "ok" : "error");
  page.checkoutButton.disabled = false;
  renderCart();
  await refresh();
}

async function signInAndCheckout(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const form = page.signinForm;
  form.querySelector("button")!.disabled = true;
  try {
    await signInWithForm(config);
    show(form, false);
    await checkout();
  } catch (error) {
    say(page.checkoutStatus, error instanceof SignInError ? error.message : explain(error), "error");
  } finally {
    form.querySelector("button")!.disabled = false;
  }
}

// --- start ----------------------------------------------------------------------------------------

async function start(): Promise<void> {
  try {
    config = await loadConfig();
  } catch (error) {
    say(page.status, String((error as Error).message), "error");
    return;
  }
  page.select.replaceChildren(
    el("option", { value: "" }, "Choose…"),
    ...config.products.map((entry) => el("option", { value: entry.product_id }, entry.name)),
  );
  page.quantity.max = String(MAX_HOLD_QUANTITY);
  page.idInput.maxLength = MAX_ID_LEN;
  cart = loadCart();
  expireLapsedLines();
  renderCart();
  startLive();

  page.select.addEventListener("change", () => page.select.value && void openProduct(page.select.value));
  byId<HTMLFormElement>("pick-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void openProduct(page.idInput.value || page.select.value);
  });
  page.quantity.addEventListener("input", () => (intentKey = null));
  byId<HTMLFormElement>("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void addToCart();
  });
  page.checkoutButton.addEventListener("click", () => void checkout());
  page.notifyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void signUpForBackInStock();
  });
  page.signinForm.addEventListener("submit", (event) => void signInAndCheckout(event));

  // Without live updates, availability is refreshed a few seconds apart while the tab is visible, and
  // at once when it returns; while live, the pushes keep it current, and a read once a minute bounds
  // how long a push that was lost on the way can leave it wrong.
  window.setInterval(() => {
    renderUpdated();
    tickCountdowns();
    const every = live?.live ? LIVE_SAFETY_REFRESH_SECONDS : config.refreshSeconds;
    if (!document.hidden && Date.now() - fetchedAt >= every * 1000) void refresh();
  }, 1000);
  document.addEventListener("visibilitychange", () => !document.hidden && !live?.live && void refresh());

  const requested = new URL(window.location.href).searchParams.get("product");
  await openProduct(requested ?? config.products[0]?.product_id ?? "");
}

void start();
