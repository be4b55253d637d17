/* The schedule page: show the next slots of the cron expression as it is typed. */
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const marker = document.getElementById("geartrain-schedule-preview");
  const target = document.getElementById("geartrain-next-slots");
  const cron = document.getElementById("id_cron");
  if (!marker || !target || !cron) {
    return;  // read-only: nothing is typed here
  }
  const names = ["cron", "timezone", "cron_base_0", "cron_base_1", "end_at_0", "end_at_1"];
  let timer = null;
  let asked = 0;
  const refresh = () => {
    const params = new URLSearchParams();
    for (const name of names) {
      const input = document.getElementById(`id_${name}`);
      if (input) {
        params.set(name, input.value);
      }
    }
    const enabled = document.getElementById("id_enabled");
    if (enabled) {
      params.set("enabled", enabled.checked ? "on" : "off");
    }
    const mine = ++asked;
    fetch(`${marker.dataset.url}?${params}`, {credentials: "same-origin"})
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        if (mine === asked) {  // an older answer arriving late is dropped
          target.innerHTML = html;
          target.dataset.expression = params.get("cron");
        }
      })
      .catch(() => {});
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  };
  for (const name of [...names, "enabled"]) {
    const input = document.getElementById(`id_${name}`);
    if (input) {
      input.addEventListener("input", later);
      input.addEventListener("change", later);
    }
  }
});
