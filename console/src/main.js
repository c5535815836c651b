// main.js - the console's entry point: a landing page and two views,
// chosen by the URL fragment (#auditor, #patient).
import { h, $, clear } from "./util.js";
import { mountAuditor } from "./auditor.js";
import { mountPatient } from "./patient.js";

let unmount = null;

function route() {
  const main = $("#main");
  const view = location.hash.slice(1);
  if (unmount) unmount();
  unmount = null;
  document.querySelectorAll("nav a").forEach((a) => a.removeAttribute("aria-current"));
  const link = document.querySelector(`nav a[href="#${view}"]`);
  if (link) link.setAttribute("aria-current", "page");
  if (view === "auditor") {
    document.title = "Auditor · ehrgate console";
    mountAuditor(main);
  } else if (view === "patient") {
    document.title = "Patient · ehrgate console";
    unmount = mountPatient(main);
  } else {
    document.title = "ehrgate console";
    clear(
      main,
      h(
        "section",
        { "aria-labelledby": "welcome-h" },
        h("h2#welcome-h", {}, "Welcome"),
        h("p", {}, "Choose who you are."),
        h(
          "ul.choices",
          {},
          h("li", {}, h("a", { href: "#auditor" }, "Auditor"), ": search the ledger, verify entries in this browser, watch it live (needs your auditor certificate)."),
          h("li", {}, h("a", { href: "#patient" }, "Patient"), ": enrol this browser with your hospital's code, see your records and who accessed them."),
        ),
      ),
    );
  }
  main.dataset.view = view || "home";
}

window.addEventListener("hashchange", route);
route();
