// Browser-test harness: the deployed local stack (STACK_JSON), Debian's Chromium via playwright-core,
// and direct API calls for set-up and for checking what the pages claim.
import { readFileSync, mkdirSync } from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

const stackFile = process.env.STACK_JSON ?? new URL("../../.local/stack.json", import.meta.url).pathname;
export const stack = JSON.parse(readFileSync(stackFile, "utf8"));
export const screenshotDir = process.env.SCREENSHOT_DIR ?? "";

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A fresh browser context (own storage) on one of the pages; console errors fail the test. */
export async function openPage(browser, url, viewport = DESKTOP) {
  const page = await blankPage(browser, viewport);
  await page.goto(url);
  return page;
}

/** As openPage, before it goes anywhere: for listeners and routes that must be in place first. */
export async function blankPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(String(error)));
  return page;
}

/** Every request the page sends from now on ({ method, url, headers, body }), to check what leaves it. */
export function recordRequests(page) {
  const sent = [];
  page.on("request", (request) => {
    const seen = (headers) => ({ method: request.method(), url: request.url(), headers, body: request.postData() ?? "" });
    // A request still in flight when the page closes (a live page's re-fetch after the test's last
    // look) has no headers left to read: recorded without them, never an unhandled rejection that
    // fails the file after its tests passed.
    sent.push(request.allHeaders().then(seen, () => seen({})));
  });
  return { all: () => Promise.all(sent) };
}

/** The Cognito calls among them: { action: "InitiateAuth" | …, body: the parsed JSON }. */
export function cognitoCalls(requests) {
  return requests
    .filter((r) => r.method === "POST" && (r.headers["x-amz-target"] ?? "").startsWith("AWSCognitoIdentityProviderService."))
    .map((r) => ({ action: r.headers["x-amz-target"].split(".")[1], body: JSON.parse(r.body) }));
}

export async function screenshot(page, name) {
  if (!screenshotDir) return;
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: `${screenshotDir}/${name}.png`, fullPage: true });
}

const tokens = {};
export async function token(role) {
  if (tokens[role]) return tokens[role];
  const user = stack.demo_users[role];
  const response = await fetch(`${stack.endpoint}/`, {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth" },
    body: JSON.stringify({ AuthFlow: "USER_PASSWORD_AUTH", ClientId: stack.user_pool_client_id,
      AuthParameters: { USERNAME: user.username, PASSWORD: user.password } }),
  });
  tokens[role] = (await response.json()).AuthenticationResult.AccessToken;
  return tokens[role];
}

// The cart of "someone else" in the tests: holds need a Cart-Token (32 random bytes, as the page makes).
const otherCart = randomBytes(32).toString("base64url");

/** A POST carries an Idempotency-Key and a Cart-Token (cartToken, else "someone else's"); another
 *  method carries a Cart-Token only when given one (a checkout). */
export async function api(method, path, { body, role, cartToken } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (role) headers.Authorization = `Bearer ${await token(role)}`;
  if (method === "POST") Object.assign(headers, { "Idempotency-Key": randomUUID(), "Cart-Token": cartToken ?? otherCart });
  else if (cartToken) headers["Cart-Token"] = cartToken;
  const response = await fetch(`${stack.api_url}${path}`, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

export async function availability(product) {
  const { status, body } = await api("GET", `/inventory/${product}`);
  if (status !== 200) throw new Error(`GET ${product}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** A product of the test's own: newProduct({ main: [stock, threshold] }). */
export async function newProduct(warehouses, prefix = "UI") {
  const product = `${prefix}-${randomUUID().slice(0, 8)}`;
  for (const [warehouse, [stock, threshold]] of Object.entries(warehouses)) {
    const { status, body } = await api("PUT", `/inventory/${product}`, { role: "admin",
      body: { warehouse_id: warehouse, stock_count: stock, threshold_level: threshold, reason: "browser test set-up" } });
    if (status !== 201) throw new Error(`set-up of ${product}: ${status} ${JSON.stringify(body)}`);
  }
  return product;
}

export async function eventually(check, { timeout = 10_000, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
}

/** Signs in through the page's sign-in dialog as a demo user (`admin` or `shopper`). */
export async function signIn(page, role) {
  await page.getByRole("dialog").waitFor();
  await page.getByLabel("E-mail").fill(stack.demo_users[role].username);
  await page.getByLabel("Password").fill(stack.demo_users[role].password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("dialog").waitFor({ state: "hidden" });
}
