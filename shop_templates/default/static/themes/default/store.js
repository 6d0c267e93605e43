/* Default storefront: copy buttons, order status polling, live price, one-submit forms.
   Plain JavaScript, no dependencies, no eval; every page works without it. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {  // http:// or old browsers
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      area.setSelectionRange(0, text.length);
      try { document.execCommand("copy") ? resolve() : reject(new Error("copy refused")); }
      catch (err) { reject(err); }
      finally { document.body.removeChild(area); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var label = button.textContent;
    copyText(button.getAttribute("data-copy")).then(function () {
      button.textContent = button.getAttribute("data-copied") || "✓";
      setTimeout(function () { button.textContent = label; }, 1500);
    }, function () {  // last resort: select the key so a long-press copies it
      var code = button.parentNode && button.parentNode.querySelector("code");
      if (code && window.getSelection) {
        var range = document.createRange();
        range.selectNodeContents(code);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
      }
    });
  });

  // forms: ask before destructive actions, and send only once
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    if (form.hasAttribute("data-once")) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      setTimeout(function () { form.removeAttribute("data-sent"); }, 8000);  // back button, failed network
    }
  });

  // order page: poll the status every second and reload when it changes
  var poll = document.querySelector("[data-poll]");
  if (poll && window.fetch) {
    var url = poll.getAttribute("data-poll");
    var status = poll.getAttribute("data-status");
    var until = Date.now() + 30 * 60 * 1000;
    var busy = false;
    var timer = null;
    var check = function () {
      if (Date.now() > until) { clearInterval(timer); return; }
      if (document.hidden || busy) return;
      busy = true;
      fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && data.status && data.status !== status) {
            clearInterval(timer);
            window.location.reload();
          }
        })
        .catch(function () {})
        .then(function () { busy = false; });
    };
    timer = setInterval(check, Math.max(250, parseInt(poll.getAttribute("data-poll-ms"), 10) || 1000));
    // back from the payment app or another tab: look at once
    document.addEventListener("visibilitychange", check);
    window.addEventListener("pageshow", check);
  }

  // product page: quantity steppers, wholesale table per option, price from the server
  var checkout = document.querySelector("form[data-price-url]");
  if (checkout) {
    var qty = checkout.querySelector("input[name=quantity]");
    var unitEls = document.querySelectorAll("[data-unit]");
    var totalEls = document.querySelectorAll("[data-total]");
    var pending = null;

    var refresh = function () {
      var sku = checkout.querySelector("input[name=sku]:checked");
      if (!sku || !qty || !window.fetch) return;
      document.querySelectorAll("[data-tiers-for]").forEach(function (table) {
        table.hidden = table.getAttribute("data-tiers-for") !== sku.value;
      });
      clearTimeout(pending);
      pending = setTimeout(function () {
        var query = "?sku=" + encodeURIComponent(sku.value) + "&qty=" + encodeURIComponent(qty.value);
        fetch(checkout.getAttribute("data-price-url") + query, {credentials: "same-origin"})
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (data) {
            if (!data) return;
            unitEls.forEach(function (el) { el.textContent = data.unit_text; });
            totalEls.forEach(function (el) { el.textContent = data.total_text; });
            (data.methods || []).forEach(function (method) {  // each method's fee and amount to pay
              checkout.querySelectorAll("[data-fee-for]").forEach(function (el) {
                if (el.getAttribute("data-fee-for") === method.provider) el.textContent = method.fee_text;
              });
              checkout.querySelectorAll("[data-pay-for]").forEach(function (el) {
                if (el.getAttribute("data-pay-for") === method.provider) el.textContent = method.amount_text;
              });
            });
            var chosen = checkout.querySelector("input[name=payment]:checked");
            if (chosen) chosen.dispatchEvent(new Event("change", {bubbles: true}));  // the amount to pay
          })
          .catch(function () {});
      }, 150);
    };

    checkout.querySelectorAll(".qty-btn").forEach(function (button) {
      button.addEventListener("click", function () {
        var step = parseInt(button.getAttribute("data-step"), 10);
        var min = parseInt(qty.min, 10) || 1;
        var max = parseInt(qty.max, 10) || 1000;
        var value = (parseInt(qty.value, 10) || min) + step;
        qty.value = Math.max(min, Math.min(max, value));
        refresh();
      });
    });
    checkout.addEventListener("change", function (event) {
      if (event.target.name === "sku" || event.target.name === "quantity") refresh();
    });
    if (qty) qty.addEventListener("input", refresh);
  }

  // pay button (order page) and "to pay" (product page): the amount with the chosen method, fee included
  document.addEventListener("change", function (event) {
    if (event.target.name !== "payment" || !event.target.form) return;
    var total = event.target.form.querySelector("[data-pay-total]");
    var amount = event.target.form.querySelectorAll("[data-pay-for]");
    amount.forEach(function (el) {
      if (total && el.getAttribute("data-pay-for") === event.target.value) total.textContent = el.textContent;
    });
  });
})();
