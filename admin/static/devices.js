// "Firefox on Linux" from a user agent string. Order matters: Edge and Opera also say Chrome,
// Chrome also says Safari, and iOS says "like Mac OS X".

const BROWSERS = [
  [/\bEdg(?:e|A|iOS)?\//, "Edge"],
  [/\bOPR\/|\bOpera\b/, "Opera"],
  [/\bSamsungBrowser\//, "Samsung Internet"],
  [/\bFirefox\/|\bFxiOS\//, "Firefox"],
  [/\bHeadlessChrome\//, "Headless Chrome"],
  [/\bChromium\//, "Chromium"],
  [/\bChrome\/|\bCriOS\//, "Chrome"],
  [/\bVersion\/[\d.]+.*\bSafari\//, "Safari"],
  [/^curl\//, "curl"],
  [/^python-httpx\//, "Python httpx"],
  [/^python-requests\//, "Python requests"],
  [/^okhttp\//, "OkHttp"],
  [/^Go-http-client\//, "Go HTTP client"],
  [/^(?:node-fetch|undici|node)\b/i, "Node.js"],
  [/^Dart\//, "Dart"],
  [/^PostmanRuntime\//, "Postman"],
];

const SYSTEMS = [
  [/\b(?:iPhone|iPad|iPod)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bWindows\b/, "Windows"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bLinux\b|\bX11\b/, "Linux"],
];

function find(patterns, text) {
  return patterns.find(([pattern]) => pattern.test(text))?.[1];
}

export function describeDevice(userAgent) {
  if (!userAgent) return "Unknown device";
  const browser = find(BROWSERS, userAgent);
  const system = find(SYSTEMS, userAgent);
  if (browser && system) return `${browser} on ${system}`;
  if (browser) return browser;
  if (system) return `A browser on ${system}`;
  return "Unknown device";
}
