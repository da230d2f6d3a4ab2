// Confirmation before a destructive action, in an in-page <dialog> (keyboard: Tab between the
// buttons, Escape cancels; Cancel has the focus first).

export function confirmAction({ title, message, action }) {
  const dialog = document.getElementById("confirm");
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-message").textContent = message;
  ok.textContent = action;
  return new Promise((resolve) => {
    const finish = (confirmed) => {
      ok.onclick = cancel.onclick = dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(confirmed);
    };
    ok.onclick = () => finish(true);
    cancel.onclick = () => finish(false);
    dialog.onclose = () => finish(false);
    dialog.showModal();
  });
}
