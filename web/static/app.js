// pyvnc's browser page: a thin shell around noVNC's RFB class (from the npm package, served at /novnc/).
import RFB from "/novnc/core/rfb.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const screen = $("screen");
const params = new URLSearchParams(location.search);

let rfb = null;
let password = params.get("password") || null;
let userDisconnected = false;
let desktopName = "";
// ?resize=remote: ask the server to make the desktop the size of the window (SetDesktopSize)
if (params.get("resize") === "remote") $("resize").checked = true;

function setStatus(text, state) {
  status.textContent = text;
  status.className = "state-" + state;
  document.title = "pyvnc: " + text;
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/websockify`;
}

function connect() {
  if (rfb) {
    userDisconnected = true;
    rfb.disconnect();
    rfb = null;
  }
  userDisconnected = false;
  $("password-form").hidden = true;
  setStatus("Connecting…", "connecting");
  const options = { shared: true };
  if (password !== null) options.credentials = { password };
  try {
    rfb = new RFB(screen, wsUrl(), options);
  } catch (err) {
    setStatus("Cannot connect: " + err.message, "error");
    return;
  }
  rfb.scaleViewport = $("scale").checked;
  rfb.resizeSession = $("resize").checked;
  rfb.viewOnly = $("viewonly").checked;
  rfb.focusOnClick = true;
  // noVNC's quality/compression defaults (6 and 2) suit most links
  rfb.addEventListener("connect", () => {
    setStatus("Connected to " + (desktopName || location.host), "connected");
    rfb.focus();
  });
  rfb.addEventListener("desktopname", (e) => {
    desktopName = e.detail.name;
    if (status.className === "state-connected") setStatus("Connected to " + desktopName, "connected");
  });
  rfb.addEventListener("disconnect", (e) => {
    const failedAuth = status.className === "state-error";
    if (!failedAuth) {
      if (e.detail.clean || userDisconnected) setStatus("Disconnected", "disconnected");
      else setStatus("Connection lost", "error");
    }
    rfb = null;
  });
  rfb.addEventListener("credentialsrequired", () => {
    if (password !== null) {
      rfb.sendCredentials({ password });
      return;
    }
    setStatus("Password required", "connecting");
    $("password-form").hidden = false;
    $("password").focus();
  });
  rfb.addEventListener("securityfailure", (e) => {
    password = null;
    const reason = e.detail.reason || "authentication failed";
    setStatus("Security failure: " + reason, "error");
  });
  rfb.addEventListener("clipboard", (e) => {
    $("clipboard").value = e.detail.text;
  });
  rfb.addEventListener("bell", () => {
    status.animate([{ opacity: 0.3 }, { opacity: 1 }], 300);
  });
}

$("password-form").addEventListener("submit", (e) => {
  e.preventDefault();
  password = $("password").value;
  $("password").value = "";
  $("password-form").hidden = true;
  if (rfb) rfb.sendCredentials({ password });
  else connect();
});
$("reconnect").addEventListener("click", connect);
$("viewonly").addEventListener("change", (e) => { if (rfb) rfb.viewOnly = e.target.checked; });
$("scale").addEventListener("change", (e) => { if (rfb) rfb.scaleViewport = e.target.checked; });
$("resize").addEventListener("change", (e) => { if (rfb) rfb.resizeSession = e.target.checked; });
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen().catch(() => {});
});
$("clipboard-toggle").addEventListener("click", (e) => {
  const panel = $("clipboard-panel");
  panel.hidden = !panel.hidden;
  e.target.setAttribute("aria-expanded", String(!panel.hidden));
});
$("clipboard-send").addEventListener("click", () => {
  if (rfb) rfb.clipboardPasteFrom($("clipboard").value);
});

// for tests and for people poking around in the console
window.pyvnc = { get rfb() { return rfb; }, connect };
connect();
