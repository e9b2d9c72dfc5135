// "Email me when it's back" on the product page: sign up, confirm with the link of the e-mail
// (read from the local SES), restock as an admin, and exactly one back-in-stock e-mail arrives.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { api, eventually, launch, newProduct, openPage, stack } from "./harness.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const shopUrl = (product) => `${stack.shop_url}?product=${encodeURIComponent(product)}`;

/** Every e-mail the local SES sent to `to`, oldest first. */
async function mailsTo(to) {
  const { messages } = await (await fetch(`${stack.endpoint}/_ministack/ses/messages`)).json();
  return Object.values(messages).flat().filter((m) => m.To.includes(to)).sort((a, b) => a.Timestamp - b.Timestamp);
}

function link(mail, kind) {
  const found = mail.BodyText.match(new RegExp(`https?://\\S+/back-in-stock/${kind}\\?token=[A-Za-z0-9._:-]+`));
  assert.ok(found, `a ${kind} link in ${mail.BodyText}`);
  return found[0];
}

test("an out-of-stock product offers the sign-up; confirm, restock, one e-mail", async () => {
  const product = await newProduct({ main: [0, 0] });
  const email = `browser.${randomUUID().slice(0, 8)}@example.com`;
  const page = await openPage(browser, shopUrl(product));
  await page.locator("#availability", { hasText: "Out of stock" }).waitFor();
  const form = page.locator("#notify-form");
  await form.waitFor();

  // A bad address: the API's refusal is shown; nothing is sent.
  await page.getByLabel("Email me when it's back").fill("not an address");
  await page.getByRole("button", { name: "Email me when it's back" }).click();
  await page.locator("#notify-status", { hasText: "e-mail address like" }).waitFor();
  // One the browser takes but the API refuses: its message is shown.
  await page.getByLabel("Email me when it's back").fill("someone@localhost");
  await page.getByRole("button", { name: "Email me when it's back" }).click();
  await page.locator("#notify-status", { hasText: "the part after @ must be a domain name" }).waitFor();

  await page.getByLabel("Email me when it's back").fill(email);
  await page.getByRole("button", { name: "Email me when it's back" }).click();
  await page.locator("#notify-status", { hasText: "Check your inbox to confirm" }).waitFor();

  const [confirmation] = await eventually(async () => {
    const mails = await mailsTo(email);
    assert.equal(mails.length, 1);
    return mails;
  });
  assert.match(confirmation.Subject, new RegExp(`Confirm: e-mail me when ${product} is back in stock`));
  // The shopper clicks the link in the e-mail: the API's own host, as on AWS.
  const confirmPage = await browser.newPage();
  const answer = await confirmPage.goto(link(confirmation, "confirm"));
  assert.equal(answer.status(), 200);
  assert.match(await confirmPage.textContent("body"), /"status":"CONFIRMED"/);

  const restock = await api("PUT", `/inventory/${product}`, { role: "admin",
    body: { warehouse_id: "main", stock_count: 4, reason: "delivery" } });
  assert.equal(restock.status, 200, JSON.stringify(restock.body));
  const news = await eventually(async () => {
    const mails = await mailsTo(email);
    assert.equal(mails.length, 2);
    return mails[1];
  }, { timeout: 20_000 });
  assert.equal(news.Subject, `${product} is back in stock`);
  // The page now offers the product, not the sign-up.
  await page.locator("#availability", { hasText: "In stock" }).waitFor({ timeout: 15_000 });
  assert.equal(await form.isVisible(), false);
  // The e-mail's unsubscribe link answers (the subscription already ended with this e-mail).
  const unsubscribed = await confirmPage.goto(link(news, "unsubscribe"));
  assert.equal(unsubscribed.status(), 200);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.equal((await mailsTo(email)).length, 2, "one back-in-stock e-mail, no more");
  assert.deepEqual(page.errors, []);
});

test("a product in stock shows no sign-up form", async () => {
  const product = await newProduct({ main: [5, 0] });
  const page = await openPage(browser, shopUrl(product));
  await page.locator("#availability", { hasText: "In stock" }).waitFor();
  assert.equal(await page.locator("#notify-form").isVisible(), false);
});
