// A person in Chromium: signs in to a panel through Padlock with an email code (read from the
// development outbox), opens the padlock page, enrols an authenticator app and checks the result.
// Usage: node sign_in_and_enrol.mjs <authorize-url> <padlock-url> <outbox-dir> <email> <password> <screenshot-dir>
// Prints one JSON line: {"signed_in": bool, "amr_page": ..., "totp_saved": bool}.
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [authorize, padlock, outbox, email, password, shots] = process.argv.slice(2);

// RFC 6238 (SHA-1, 6 digits, 30 s), written here so the codes do not come from Padlock's code.
function base32(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of s.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(secret, time) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 30)));
  const h = createHmac("sha1", base32(secret)).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1000000).padStart(6, "0");
}
if (totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59) !== "287082") throw new Error("RFC 6238 vector failed");

function newestCode() {
  const files = readdirSync(outbox).sort();
  const text = readFileSync(join(outbox, files[files.length - 1]), "utf8");
  return text.split("\n").find((l) => l.includes("sign-in code.")).slice(0, 6);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
// The panel itself is not running: answer its callback so the browser lands somewhere.
let callback = null;
await page.route("http://127.0.0.1:9/**", (route) => {
  callback = route.request().url();
  return route.fulfill({ status: 200, contentType: "text/html", body: "<h1>panel</h1>" });
});
await page.goto(authorize);
await page.fill("#email", email);
await page.fill("#password", password);
await page.screenshot({ path: join(shots, "1-login.png") });
await Promise.all([page.waitForURL(/\/login\/factor/), page.click("button[type=submit]")]).catch(async (e) => {
  await page.screenshot({ path: join(shots, "error.png") });
  console.error(await page.content());
  throw e;
});
const prompt = await page.textContent("main p");
await page.fill("#code", newestCode());
await page.screenshot({ path: join(shots, "2-factor.png") });
await page.click("form:first-of-type button[type=submit]");
await page.waitForURL(/127\.0\.0\.1:9\/cb/);

await page.goto(`${padlock}/account/security`);
await page.click("text=Set up an authenticator app");
await page.waitForSelector("img[alt='TOTP QR code']");
await page.screenshot({ path: join(shots, "3-totp.png") });
const secret = (await page.textContent("p.hint code")).trim();
const qrLoaded = await page.$eval("img[alt='TOTP QR code']", (img) => img.complete && img.naturalWidth > 0);
await page.fill("#totp", totp(secret, Date.now() / 1000));
await page.click("form[action='/account/security/totp/confirm'] button");
await page.waitForSelector("p.ok");
const saved = (await page.textContent("p.ok")).includes("authenticator app is set up");
const preferred = await page.$eval("#preferred", (s) => s.value);
await page.screenshot({ path: join(shots, "4-saved.png") });
await browser.close();
console.log(JSON.stringify({ signed_in: callback !== null && callback.includes("code="), prompt, qr_loaded: qrLoaded, totp_saved: saved, preferred }));
