// A person in Chromium with JavaScript off, whose company uses Duo: signs in to a panel through
// Padlock, and the factor page waits for the Duo push on its own (it reloads itself) until the
// push is approved and the browser lands on the panel. Then, signed in to the padlock page with
// the given session cookie, starts a Duo setup and checks that Duo's activation QR image loads
// (the page's Content-Security-Policy lets it come from Duo's host).
// Usage: node duo_push.mjs <authorize-url> <padlock-url> <email> <password> <session-cookie> <screenshot-dir>
// Prints one JSON line: {"waited": bool, "signed_in": bool, "qr_loaded": bool}.
import { chromium } from "playwright-core";
import { join } from "node:path";

const [authorize, padlock, email, password, session, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// 1. No JavaScript: the waiting page must move on by itself.
const noJs = await browser.newContext({ javaScriptEnabled: false });
const page = await noJs.newPage();
// The panel is not running (and Chromium refuses its port 9 anyway): the request for its
// callback is the sign-in's end.
let callback = null;
page.on("request", (r) => {
  if (r.url().startsWith("http://127.0.0.1:9/cb")) callback = r.url();
});
await page.goto(authorize);
await page.fill("#email", email);
await page.fill("#password", password);
await Promise.all([page.waitForURL(/\/login\/factor/), page.click("button[type=submit]")]);
const waited = (await page.content()).includes("A Duo push is on its way");
await page.screenshot({ path: join(shots, "duo-1-waiting.png") });
for (let waitedMs = 0; callback === null; waitedMs += 200) {
  if (waitedMs > 30000) {
    await page.screenshot({ path: join(shots, "duo-error.png") });
    throw new Error(`no sign-in after 30 s, at ${page.url()}`);
  }
  await page.waitForTimeout(200);
}
await noJs.close();

// 2. The Duo setup's QR code, from Duo's host, loads in the padlock page.
const ctx = await browser.newContext();
const [name, value] = session.split("=");
await ctx.addCookies([{ name, value, url: padlock }]);
const account = await ctx.newPage();
await account.goto(`${padlock}/account/security`);
await account.click("text=Set up Duo Mobile");
await account.waitForSelector("#duo-qr");
await account.waitForFunction(() => document.querySelector("#duo-qr").complete);
const qrLoaded = await account.$eval("#duo-qr", (img) => img.naturalWidth > 0);
await account.screenshot({ path: join(shots, "duo-2-setup.png") });
await browser.close();
console.log(JSON.stringify({ waited, signed_in: callback !== null && callback.includes("code="), qr_loaded: qrLoaded }));
