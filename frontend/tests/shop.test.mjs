// The product page, as a shopper uses it, against the deployed local stack.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, availability, cognitoCalls, eventually, launch, newProduct, openPage, PHONE, recordRequests, screenshot, stack }
  from "./harness.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const shopUrl = (product) => `${stack.shop_url}?product=${encodeURIComponent(product)}`;
const label = (page) => page.locator("#availability");
const cartLines = (page) => page.locator("#cart-lines li");

async function addToCart(page, quantity) {
  await page.getByLabel("Quantity").fill(String(quantity));
  await page.getByRole("button", { name: "Add to cart" }).click();
}

test("shows the seeded availability the way shops say it, per warehouse", async () => {
  const product = stack.demo_products[0];
  const expected = await availability(product);
  const page = await openPage(browser, stack.shop_url);
  await label(page).filter({ hasText: /./ }).waitFor();
  const words = expected.available <= 0 ? "Out of stock" : expected.status === "LOW_STOCK" ? `Only ${expected.available} left` : "In stock";
  assert.equal(await label(page).textContent(), words);
  for (const warehouse of expected.warehouses) {
    await page.locator("#warehouses li", { hasText: `${warehouse.warehouse_id}: ${warehouse.available} available` }).waitFor();
  }
  assert.match(await page.locator("#updated").textContent(), /Updated (just now|\d+s ago)/);
  await screenshot(page, "shop-desktop");
  const phone = await openPage(browser, stack.shop_url, PHONE);
  await label(phone).filter({ hasText: /./ }).waitFor();
  await screenshot(phone, "shop-phone");
  assert.deepEqual([...page.errors, ...phone.errors], []);
});

test("a low item says how many are left; an unknown id says so", async () => {
  const product = await newProduct({ main: [3, 5] });
  const page = await openPage(browser, shopUrl(product));
  await page.locator("#availability", { hasText: "Only 3 left" }).waitFor();
  await page.getByLabel("or id").fill("NO-SUCH-PRODUCT");
  await page.getByRole("button", { name: "Open" }).click();
  await page.locator("#page-status", { hasText: 'We don\'t have a product with id "NO-SUCH-PRODUCT"' }).waitFor();
});

test("add to cart holds stock, the page shows it, remove gives it back", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, shopUrl(product));
  await label(page).filter({ hasText: "In stock" }).waitFor();
  await addToCart(page, 3);
  await cartLines(page).filter({ hasText: `3 × ${product}` }).waitFor();
  await page.locator("#cart-lines li .when", { hasText: /Held for \d+:\d\d/ }).waitFor();
  assert.equal((await availability(product)).available, 7);
  await page.getByRole("button", { name: `Remove ${product} from the cart` }).click();
  await cartLines(page).first().waitFor({ state: "detached" });
  assert.equal((await availability(product)).available, 10);
  assert.deepEqual(page.errors, []);
});

test("a double click on Add to cart holds once, even when the first answer beats the second click", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, shopUrl(product));
  await label(page).filter({ hasText: "In stock" }).waitFor();
  await page.getByLabel("Quantity").fill("2");
  const add = page.getByRole("button", { name: "Add to cart" });
  await add.dblclick();
  await cartLines(page).first().waitFor();
  // The slow double click: the second click lands after the first hold came back.
  await add.click();
  await page.waitForTimeout(300); // let a second request, had there been one, land
  assert.equal(await cartLines(page).count(), 1);
  let after = await availability(product);
  assert.deepEqual([after.available, after.warehouses[0].reserved_count], [8, 2]);
  // A click a while later is a new intent: the shopper wants two more.
  await page.waitForTimeout(1000);
  await add.click();
  await cartLines(page).nth(1).waitFor();
  after = await availability(product);
  assert.deepEqual([after.available, after.warehouses[0].reserved_count], [6, 4]);
});

test("a hold that runs out is shown as expired and its units come back", async () => {
  const product = await newProduct({ main: [5, 1] });
  const page = await openPage(browser, shopUrl(product));
  await label(page).filter({ hasText: "In stock" }).waitFor();
  await addToCart(page, 2);
  await cartLines(page).first().waitFor();
  // The test stack's holds last stack.hold_seconds (10 s).
  const expired = cartLines(page).filter({ hasText: "Expired: the items went back on sale" });
  await expired.waitFor({ timeout: (stack.hold_seconds + 10) * 1000 });
  assert.equal(await expired.getAttribute("data-state"), "expired");
  await eventually(async () => assert.equal((await availability(product)).available, 5), { timeout: 15_000 });
  await page.getByRole("button", { name: `Remove ${product} from the cart` }).click();
  await cartLines(page).first().waitFor({ state: "detached" });
});

test("checkout asks the shopper to sign in, then sells each hold", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, shopUrl(product));
  await label(page).filter({ hasText: "In stock" }).waitFor();
  await addToCart(page, 4);
  await cartLines(page).first().waitFor();
  await page.getByRole("button", { name: "Checkout" }).click();
  await page.getByText("Sign in to check out.").waitFor();
  const requests = recordRequests(page);
  await page.getByLabel("E-mail").fill(stack.demo_users.shopper.username);
  await page.getByLabel("Password").fill(stack.demo_users.shopper.password);
  await page.getByRole("button", { name: "Sign in and check out" }).click();
  await page.locator("#checkout-results li", { hasText: `Bought 4 × ${product}` }).waitFor();
  // Signed in with SRP: the password itself went nowhere.
  const sent = await requests.all();
  assert.deepEqual(cognitoCalls(sent).map(({ action, body }) => [action, body.AuthFlow ?? body.ChallengeName]),
    [["InitiateAuth", "USER_SRP_AUTH"], ["RespondToAuthChallenge", "PASSWORD_VERIFIER"]]);
  assert.ok(!sent.some((request) => (request.url + request.body).includes(stack.demo_users.shopper.password)));
  await page.locator("#checkout-status", { hasText: "Your order is complete" }).waitFor();
  const sold = (await availability(product)).warehouses[0];
  assert.deepEqual([sold.stock_count, sold.reserved_count, sold.available], [6, 0, 6]);
  await page.locator("#cart-lines li[data-state=bought]").waitFor();
});

test("asking for more than is available gets a clear message and holds nothing", async () => {
  const product = await newProduct({ main: [3, 5] });
  const page = await openPage(browser, shopUrl(product));
  await label(page).filter({ hasText: "Only 3 left" }).waitFor();
  await addToCart(page, 5);
  await page.locator("#add-status", { hasText: "Only 3 left: choose 3 or fewer." }).waitFor();
  // Someone else buys 2 while the page still shows 3: the API's answer is explained too.
  const other = await api("POST", `/inventory/${product}/reserve`, { body: { quantity: 2 } });
  assert.equal(other.status, 201);
  await addToCart(page, 3);
  // The page refreshes every few seconds: the API's refusal or the page's own check says it, in the same words.
  await page.locator("#add-status", { hasText: /[Oo]nly 1 left.*[Cc]hoose 1 or fewer/ }).waitFor();
  assert.equal(await cartLines(page).count(), 0);
  assert.equal((await availability(product)).available, 1);
});
