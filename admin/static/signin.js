import { h } from "./dom.js";

const MESSAGES = {
  INVALID_CREDENTIALS: "Wrong email or password.",
  ACCOUNT_DISABLED: "This account is deactivated.",
};

/** The sign-in form. `message` says why it is shown (signed out, session revoked…). */
export function signInView({ auth, message, onSignedIn }) {
  // Why the form is shown (signed out, session revoked…) reads as news; a failed sign-in as
  // an error.
  const alert = h("p", { id: "signin-message", class: "notice info", role: "alert" }, message);
  const email = h("input", {
    id: "email",
    name: "email",
    type: "email",
    autocomplete: "username",
    required: true,
    "aria-describedby": "signin-message",
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");

  async function signIn(event) {
    event.preventDefault();
    alert.textContent = "";
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await auth.signIn(email.value, password.value);
      password.value = "";
      onSignedIn();
    } catch (error) {
      let text = MESSAGES[error.code] ?? error.message;
      if (error.code === "RATE_LIMITED" && error.extensions?.retryAfter) {
        text = `Too many attempts. Try again in ${error.extensions.retryAfter} seconds.`;
      }
      alert.className = "notice error";
      alert.textContent = text;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  }

  return h(
    "form",
    { class: "card signin", onsubmit: signIn },
    h("h1", { tabindex: -1 }, "Sign in"),
    h("p", { class: "muted" }, "Keyturn admin console: for admins only."),
    alert,
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    submit,
  );
}
