// Live updates (issue 18): pages with a socket to the stack's WebSocket API show every stock change
// within a second and do not poll meanwhile; a page whose socket cannot connect polls as before.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { api, availability, blankPage, launch, newProduct, signIn, stack } from "./harness.mjs";

// How soon after a change's request has been answered another page must show it.
const LIVE_WITHIN_MS = 1000;

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const shopUrl = (product) => `${stack.shop_url}?product=${encodeURIComponent(product)}`;
const productPath = (product) => new URL(`${stack.api_url}/inventory/${encodeURIComponent(product)}`).pathname;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The products here stay below their threshold of 100, so the page says how many are left.
const left = (page, count) => page.locator("#availability", { hasText: new RegExp(`^Only ${count} left$`) });
const sequenceShown = async (page) => Number(await page.locator("#product").getAttribute("data-sequence"));

function messageType(payload) {
  try {
    return JSON.parse(String(payload)).type;
  } catch {
    return undefined;
  }
}

/** A page watched from before it loads: the times of its GETs of `product` (if given), and
 *  (subscribed) when the server first confirmed a subscription on its socket. */
async function watchedPage(url, product) {
  const page = await blankPage(browser);
  const gets = [];
  page.on("request", (request) => {
    if (product && request.method() === "GET" && new URL(request.url()).pathname === productPath(product)) gets.push(Date.now());
  });
  const subscribed = new Promise((resolve, reject) => {
    page.on("websocket", (socket) => socket.on("framereceived", ({ payload }) => {
      if (messageType(payload) === "subscribed") resolve(Date.now());
    }));
    setTimeout(() => reject(new Error(`${url}: no subscription confirmed on a socket within 20 s`)), 20_000).unref();
  });
  subscribed.catch(() => {}); // awaited (and so reported) by settledLive
  await page.goto(url);
  return { page, gets, subscribed };
}

/** Live, subscribed, and caught up: the re-fetches the page makes once subscribed (at once, and
 *  2 s later) are behind it, with no GET of the product for a second after, so a GET from now on
 *  would be polling. */
async function settledLive({ page, gets, subscribed }) {
  await page.locator('#live-indicator[data-live="true"]', { hasText: "Live" }).waitFor();
  const subscribedAt = await subscribed;
  for (;;) {
    const wait = Math.max(subscribedAt + 2000, gets.at(-1) ?? 0) + 1000 - Date.now();
    if (wait <= 0) return;
    await sleep(wait);
  }
}

/** Waits for `locator` until LIVE_WITHIN_MS after `since` (when the change's request was answered). */
async function shownWithin(locator, since, what) {
  try {
    await locator.waitFor({ timeout: Math.max(1, since + LIVE_WITHIN_MS - Date.now()) });
  } catch (error) {
    throw new Error(`${what}: not shown within ${LIVE_WITHIN_MS} ms`, { cause: error });
  }
}

function requireWebSocketApi() {
  assert.ok(stack.websocket_url, "the stack description has no websocket_url: no live updates to test");
}

test("two shoppers on one product: each change shows on the other page within a second, and it does not poll", async () => {
  requireWebSocketApi();
  const product = await newProduct({ main: [20, 100] });
  const a = await watchedPage(shopUrl(product), product);
  const b = await watchedPage(shopUrl(product), product);
  await Promise.all([settledLive(a), settledLive(b)]);
  await left(b.page, 20).waitFor();
  const getsBefore = b.gets.length;

  // A hold placed on page A, then given back.
  const reserved = a.page.waitForResponse((response) =>
    response.request().method() === "POST" && new URL(response.url()).pathname === `${productPath(product)}/reserve`);
  await a.page.getByLabel("Quantity").fill("3");
  await a.page.getByRole("button", { name: "Add to cart" }).click();
  const placed = await reserved;
  let answered = Date.now();
  assert.equal(placed.status(), 201);
  await shownWithin(left(b.page, 17), answered, "a hold placed on page A");
  const released = a.page.waitForResponse((response) => response.request().method() === "DELETE");
  await a.page.getByRole("button", { name: `Remove ${product} from the cart` }).click();
  const gone = await released;
  answered = Date.now();
  assert.equal(gone.status(), 200);
  await shownWithin(left(b.page, 20), answered, "the hold given back on page A");

  // An admin's delivery through the API.
  const delivery = await api("PUT", `/inventory/${product}`, { role: "admin",
    body: { warehouse_id: "main", adjust_by: 5, reason: "delivery" } });
  answered = Date.now();
  assert.equal(delivery.status, 200, JSON.stringify(delivery.body));
  await shownWithin(left(b.page, 25), answered, "an admin's delivery");

  // Another cart holds 2 and checks them out: the sale leaves `available` as the hold left it, so
  // page B shows it by the sequence of its figures.
  const cartToken = randomBytes(32).toString("base64url");
  const hold = await api("POST", `/inventory/${product}/reserve`, { body: { quantity: 2 }, cartToken });
  answered = Date.now();
  assert.equal(hold.status, 201, JSON.stringify(hold.body));
  await shownWithin(left(b.page, 23), answered, "a hold placed through the API");
  const beforeSale = await sequenceShown(b.page);
  const sale = await api("PUT", `/inventory/${product}`, { role: "shopper",
    body: { reservation_id: hold.body.reservation_id }, cartToken });
  answered = Date.now();
  assert.equal(sale.status, 200, JSON.stringify(sale.body));
  try {
    await b.page.waitForFunction((shown) => Number(document.querySelector("#product")?.dataset.sequence) > shown,
      beforeSale, { timeout: Math.max(1, answered + LIVE_WITHIN_MS - Date.now()) });
  } catch (error) {
    throw new Error(`the checkout: not shown within ${LIVE_WITHIN_MS} ms`, { cause: error });
  }
  const sold = await availability(product);
  assert.deepEqual([sold.available, sold.warehouses[0].stock_count, sold.warehouses[0].reserved_count], [23, 23, 0]);
  assert.equal(await sequenceShown(b.page), sold.sequence, "page B shows the latest figures");
  assert.equal(await b.page.locator("#availability").textContent(), "Only 23 left");

  assert.deepEqual(b.gets.slice(getsBefore), [], "page B sent no GET of the product while live");
  assert.deepEqual([...a.page.errors, ...b.page.errors], []);
});

test("the admin panel is live: a hold placed elsewhere shows in the product's row within a second", async () => {
  requireWebSocketApi();
  const product = await newProduct({ main: [10, 2] });
  const admin = await watchedPage(stack.admin_url);
  await signIn(admin.page, "admin");
  await admin.page.getByLabel("Search").fill(product);
  const row = admin.page.locator(`tr[data-product="${product}"][data-warehouse="main"]`);
  await row.waitFor();
  await settledLive(admin);
  await admin.page.locator("#table-status", { hasText: "items shown" }).waitFor(); // its reload is done
  const cell = (column, value) => row.locator(`[data-column="${column}"]`, { hasText: new RegExp(`^${value}$`) });
  await cell("reserved_count", 0).waitFor();

  const hold = await api("POST", `/inventory/${product}/reserve`, { body: { quantity: 2 } });
  const answered = Date.now();
  assert.equal(hold.status, 201, JSON.stringify(hold.body));
  await shownWithin(cell("available", 8), answered, "available in the admin's row");
  await shownWithin(cell("reserved_count", 2), answered, "reserved in the admin's row");
  assert.equal(await row.locator('[data-column="stock_count"]').textContent(), "10");
  assert.deepEqual(admin.page.errors, []);
});

test("a page whose socket cannot connect says it polls, and does", async () => {
  const product = await newProduct({ main: [5, 1] });
  const page = await blankPage(browser);
  let refreshSeconds = 0;
  // The published config.json, read path-style from the local S3 (Node does not resolve the pages'
  // *.localhost host as the browser does), with a socket URL nothing listens on.
  const bucket = new URL(stack.frontend_origin).hostname.split(".s3-website")[0];
  const config = await (await fetch(`${stack.endpoint}/${bucket}/config.json`)).json();
  refreshSeconds = config.refreshSeconds;
  await page.route("**/config.json", (route) => route.fulfill({ json: { ...config, websocketUrl: "ws://127.0.0.1:9/" } }));
  await page.goto(shopUrl(product));
  await page.locator("#availability", { hasText: "In stock" }).waitFor();
  const indicator = page.locator("#live-indicator");
  await indicator.filter({ hasText: `Updates every ${refreshSeconds} s` }).waitFor();
  assert.equal(await indicator.getAttribute("data-live"), "false");
  await page.waitForRequest((request) => request.method() === "GET" && new URL(request.url()).pathname === productPath(product),
    { timeout: (refreshSeconds + 2) * 1000 });
  assert.equal(await indicator.getAttribute("data-live"), "false");
  assert.deepEqual(page.errors, []);
});
