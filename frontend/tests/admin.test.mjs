// The admin panel: who may use it, restocking, a concurrent change, an expired session.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, availability, cognitoCalls, eventually, launch, newProduct, openPage, PHONE, recordRequests, screenshot, signIn, stack }
  from "./harness.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const row = (page, product, warehouse = "main") => page.locator(`tr[data-product="${product}"][data-warehouse="${warehouse}"]`);

async function openEditor(page, product) {
  await page.getByLabel("Search").fill(product);
  await row(page, product).waitFor();
  await page.getByRole("button", { name: `Change ${product} in main` }).click();
  await page.locator("#editor").waitFor();
}

test("signs in with SRP: the password never leaves the page", async () => {
  const { username, password } = stack.demo_users.admin;
  const page = await openPage(browser, stack.admin_url);
  // As on a plain-HTTP origin (the S3 website on AWS) where a browser has no crypto.subtle; Chromium
  // counts *.localhost as secure, so take it away here.
  await page.addInitScript(() => Object.defineProperty(Crypto.prototype, "subtle", { get: () => undefined }));
  await page.reload();
  assert.equal(await page.evaluate(() => typeof crypto.subtle), "undefined");
  const config = await page.evaluate(() => fetch("config.json").then((response) => response.json()));
  assert.equal(config.userPoolId, stack.user_pool_id);
  const requests = recordRequests(page);
  await signIn(page, "admin");
  await page.locator(`tr[data-product="${stack.demo_products[0]}"]`).first().waitFor();
  const sent = await requests.all();
  const calls = cognitoCalls(sent);
  assert.deepEqual(calls.map((call) => call.action), ["InitiateAuth", "RespondToAuthChallenge"]);
  const [initiate, respond] = calls.map((call) => call.body);
  assert.equal(initiate.AuthFlow, "USER_SRP_AUTH");
  assert.deepEqual(Object.keys(initiate.AuthParameters).sort(), ["SRP_A", "USERNAME"]);
  assert.equal(initiate.AuthParameters.USERNAME, username);
  assert.match(initiate.AuthParameters.SRP_A, /^[0-9a-f]{700,}$/);
  assert.equal(respond.ChallengeName, "PASSWORD_VERIFIER");
  assert.deepEqual(Object.keys(respond.ChallengeResponses).sort(),
    ["PASSWORD_CLAIM_SECRET_BLOCK", "PASSWORD_CLAIM_SIGNATURE", "TIMESTAMP", "USERNAME"]);
  // Nothing the page sent, to Cognito, the API or anywhere, carries the password in any form.
  assert.ok(sent.some((request) => request.url.includes("/inventory")), "the signed-in page called the API");
  for (const form of [password, encodeURIComponent(password), btoa(password)]) {
    for (const request of sent) {
      assert.ok(![request.url, request.body, ...Object.values(request.headers)].some((text) => text.includes(form)),
        `${request.method} ${request.url} carries the password`);
    }
  }
  assert.deepEqual(page.errors, []);
});

test("a wrong password or an unknown e-mail is told plainly, then the right one signs in", async () => {
  const { username, password } = stack.demo_users.admin;
  const page = await openPage(browser, stack.admin_url);
  await page.getByRole("dialog").waitFor();
  const status = page.locator("#signin-status");
  for (const [email, typed] of [[username, password + "x"], [`nobody-${Date.now()}@example.com`, password]]) {
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(typed);
    await page.getByRole("button", { name: "Sign in" }).click();
    await status.filter({ hasText: "That e-mail and password don't match an account." }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("inventory.session")), null);
    await page.evaluate(() => { document.querySelector("#signin-status").textContent = ""; });
  }
  await signIn(page, "admin");
  await page.locator(`tr[data-product="${stack.demo_products[0]}"]`).first().waitFor();
  assert.deepEqual(page.errors, []);
});

test("a shopper account is told why it cannot manage stock", async () => {
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "shopper");
  await page.locator("#refused", { hasText: "is not in the inventory-admins group" }).waitFor();
  assert.equal(await page.locator("#workspace").isVisible(), false);
});

test("the admin sees every item, filters, and restocks a low item", async () => {
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "admin");
  for (const seeded of stack.demo_products) await page.locator(`tr[data-product="${seeded}"]`).first().waitFor();
  await screenshot(page, "admin-desktop");
  const product = await newProduct({ main: [2, 5] });
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByLabel("Status").selectOption("LOW_STOCK");
  await page.locator('#stock-rows .status:not([data-status="LOW_STOCK"])').first().waitFor({ state: "detached" });
  await row(page, product).waitFor();
  await page.getByLabel("Status").selectOption("");
  await openEditor(page, product);
  assert.equal(await row(page, product).locator(".status").textContent(), "Low stock");
  await page.getByLabel("Adjust by (+/−)").check();
  await page.getByLabel("Amount").fill("20");
  await page.getByLabel("Reason (kept with the change)").fill("delivery");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#page-status", { hasText: `Saved ${product} in main: 22 on hand` }).waitFor();
  await row(page, product).locator(".status", { hasText: "In stock" }).waitFor();
  const item = (await availability(product)).warehouses[0];
  assert.deepEqual([item.stock_count, item.status], [22, "IN_STOCK"]);
  // The change is in the product's history, with the reason, once the stream has recorded it.
  await eventually(async () => {
    await page.getByRole("button", { name: `History of ${product}` }).click();
    await page.locator("#history-rows tr[data-kind=adjust]", { hasText: "delivery" }).waitFor({ timeout: 1000 });
  });
  assert.match(await page.locator("#history-rows tr[data-kind=adjust]").textContent(), /2 → 22.*delivery/);

  const phone = await openPage(browser, stack.admin_url, PHONE);
  await signIn(phone, "admin");
  await phone.locator(`tr[data-product="${stack.demo_products[0]}"]`).first().waitFor();
  await screenshot(phone, "admin-phone");
  assert.deepEqual([...page.errors, ...phone.errors], []);
});

test("a change someone else made first is shown, and the change can be saved again", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "admin");
  await openEditor(page, product);
  await page.getByLabel("Set to").check();
  await page.getByLabel("Amount").fill("12");
  await page.getByLabel("Reason (kept with the change)").fill("stock count");
  const meanwhile = await api("PUT", `/inventory/${product}`, { role: "admin",
    body: { warehouse_id: "main", adjust_by: 5, reason: "delivery at the other desk" } });
  assert.equal(meanwhile.status, 200);
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#edit-status", { hasText: "Someone else changed this item while you were editing it" }).waitFor();
  await page.locator("#editor-current", { hasText: "Now: 15 on hand" }).waitFor();
  assert.equal((await availability(product)).warehouses[0].stock_count, 15);
  assert.equal(await page.getByLabel("Amount").inputValue(), "12"); // what was typed is kept
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#page-status", { hasText: `Saved ${product} in main: 12 on hand` }).waitFor();
  assert.equal((await availability(product)).warehouses[0].stock_count, 12);
});

test("an expired session asks to sign in again without losing what was typed", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "admin");
  await openEditor(page, product);
  await page.getByLabel("Adjust by (+/−)").check();
  await page.getByLabel("Amount").fill("-3");
  await page.getByLabel("Reason (kept with the change)").fill("damaged in transit");
  await page.evaluate(() => {
    const session = JSON.parse(sessionStorage.getItem("inventory.session"));
    sessionStorage.setItem("inventory.session", JSON.stringify({ ...session, expiresAt: 0 }));
  });
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#signin-reason", { hasText: "Your session has ended" }).waitFor();
  assert.equal((await availability(product)).warehouses[0].stock_count, 10);
  await signIn(page, "admin");
  assert.equal(await page.getByLabel("Reason (kept with the change)").inputValue(), "damaged in transit");
  assert.equal(await page.getByLabel("Amount").inputValue(), "-3");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#page-status", { hasText: `Saved ${product} in main: 7 on hand` }).waitFor();
});

test("adding an item that exists already is refused, not overwritten", async () => {
  const product = await newProduct({ main: [4, 1] });
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "admin");
  await page.getByLabel("Product id").fill(product);
  await page.getByLabel("Warehouse id").fill("main");
  await page.getByLabel("On hand").fill("99");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.locator("#add-status", { hasText: "already exists" }).waitFor();
  assert.equal((await availability(product)).warehouses[0].stock_count, 4);
  await page.getByLabel("Warehouse id").fill("north");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.locator("#add-status", { hasText: `Added ${product} in north with 99 on hand` }).waitFor();
  await row(page, product, "north").waitFor();
});

test("an item's shards are changed in the panel: the row shows the new number, the figures stay the sums", async () => {
  const product = await newProduct({ main: [10, 2] });
  const page = await openPage(browser, stack.admin_url);
  await signIn(page, "admin");
  await openEditor(page, product);
  const shards = page.getByLabel("Shards", { exact: true });
  const cell = (column) => row(page, product).locator(`[data-column="${column}"]`);
  assert.equal(await cell("shards").textContent(), "1");
  assert.equal(await shards.inputValue(), "1");
  const requests = recordRequests(page);
  await page.getByLabel("Reason (kept with the change)").fill("flash sale");
  // Out of range: the page refuses it without asking the API.
  for (const outOfRange of ["0", "33"]) {
    await shards.fill(outOfRange);
    await page.getByRole("button", { name: "Save" }).click();
    assert.equal(await shards.evaluate((input) => input.validity.valid), false, `${outOfRange} shards`);
    assert.equal(await page.locator("#editor").isVisible(), true);
  }
  await shards.fill("4");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#page-status", { hasText: `Saved ${product} in main: 10 on hand, 10 available, In stock, 4 shards.` })
    .waitFor();
  await cell("shards").filter({ hasText: "4" }).waitFor();
  assert.deepEqual(await Promise.all(["stock_count", "reserved_count", "available"].map((column) => cell(column).textContent())),
    ["10", "0", "10"]);
  // The one change that left the page is the valid one.
  const changes = (await requests.all()).filter((request) => request.method === "PUT");
  assert.deepEqual(changes.map((request) => JSON.parse(request.body)),
    [{ warehouse_id: "main", expected_version: 1, shards: 4, reason: "flash sale" }]);
  const item = (await availability(product)).warehouses[0];
  assert.deepEqual([item.shards, item.stock_count, item.available], [4, 10, 10]);
  // The history tells which shard each entry's figures are of.
  await eventually(async () => {
    await page.getByRole("button", { name: `History of ${product}` }).click();
    await page.locator("#history-rows tr[data-kind=sharding]", { hasText: "shard 0" }).waitFor({ timeout: 1000 });
  });
  assert.match(await page.locator("#history-rows tr[data-kind=sharding]", { hasText: "shard 0" }).textContent(),
    /Shards changed · shard 0.*10 → \d+.*flash sale/);
  assert.deepEqual(page.errors, []);
});
