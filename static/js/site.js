/* The site's only script. Everything works without it; it adds the live count, copying a link,
   and moving focus to a form's error summary. No framework, no build step. */
(function () {
  "use strict";

  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var formatter = new Intl.NumberFormat(document.documentElement.lang || "en-GB");

  /* Live count: poll the letter's JSON with its ETag. Start every data-interval ms (5 s by
     default), half as often each time nothing changed (to 60 s), back to the start on a change,
     and not at all while the tab is hidden. */
  var SLOWEST = 60000;

  function LiveCount(element) {
    this.element = element;
    this.url = element.getAttribute("data-url");
    this.count = parseInt(element.getAttribute("data-count"), 10) || 0;
    this.number = element.querySelector("[data-count-number]");
    this.bar = element.querySelector("[data-count-bar]");
    this.etag = null;
    this.fastest = parseInt(element.getAttribute("data-interval"), 10) || 5000;
    this.delay = this.fastest;
    this.timer = null;
    this.shown = this.count;
  }

  LiveCount.prototype.schedule = function () {
    var self = this;
    window.clearTimeout(this.timer);
    if (document.hidden) return;
    this.timer = window.setTimeout(function () { self.poll(); }, this.delay);
  };

  LiveCount.prototype.poll = function () {
    var self = this;
    var headers = { Accept: "application/json" };
    if (this.etag) headers["If-None-Match"] = this.etag;
    fetch(this.url, { headers: headers, credentials: "omit" })
      .then(function (response) {
        if (response.status === 304) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        self.etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (body) {
        if (body && typeof body.signature_count === "number" && body.signature_count !== self.count) {
          self.update(body.signature_count);
          self.delay = self.fastest;
        } else {
          self.delay = Math.min(SLOWEST, Math.round(self.delay * 1.5));
        }
      })
      .catch(function () {
        self.delay = Math.min(SLOWEST, self.delay * 2);
      })
      .then(function () { self.schedule(); });
  };

  LiveCount.prototype.update = function (count) {
    var from = this.shown, self = this;
    this.count = count;
    this.element.setAttribute("data-count", String(count));
    if (this.bar) this.bar.value = Math.min(count, this.bar.max);
    if (reduceMotion || !window.requestAnimationFrame) {
      this.show(count);
      return;
    }
    var start = null, duration = 800;
    function step(now) {
      if (start === null) start = now;
      var progress = Math.min(1, (now - start) / duration);
      var eased = 1 - Math.pow(1 - progress, 3);
      self.show(Math.round(from + (count - from) * eased));
      if (progress < 1 && self.count === count) window.requestAnimationFrame(step);
    }
    window.requestAnimationFrame(step);
  };

  LiveCount.prototype.show = function (value) {
    this.shown = value;
    if (this.number) this.number.textContent = formatter.format(value);
  };

  var counters = [];
  Array.prototype.forEach.call(document.querySelectorAll("[data-live-count]"), function (element) {
    var counter = new LiveCount(element);
    counters.push(counter);
    counter.schedule();
  });
  document.addEventListener("visibilitychange", function () {
    counters.forEach(function (counter) {
      if (document.hidden) {
        window.clearTimeout(counter.timer);
      } else {
        counter.delay = counter.fastest;
        counter.poll();
      }
    });
  });

  /* Copy link: the button exists in the page but stays hidden unless the clipboard works. */
  if (navigator.clipboard && window.isSecureContext) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
      var label = button.textContent;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
          button.textContent = button.getAttribute("data-copied") || label;
          window.setTimeout(function () { button.textContent = label; }, 2000);
        });
      });
    });
  }

  /* Forms that cannot be undone ask first (without JavaScript they simply submit). */
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sending")) return; /* already sent: the guard below stops it */
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  /* A second press while the first is on its way would send the form again (two drafts, two
     signatures' worth of mail). Listened for on the document, after any confirm() above. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented) return;
    if (form.getAttribute("data-sending")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-sending", "1");
    /* If the answer never comes (a dropped connection), pressing again works after a while. */
    window.setTimeout(function () { form.removeAttribute("data-sending"); }, 8000);
  });
  /* Back to a page kept in the browser's memory: its forms may be sent again. */
  window.addEventListener("pageshow", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-sending]"), function (form) {
      form.removeAttribute("data-sending");
    });
  });

  /* A form that came back with errors: move focus to the summary so it is read out first. */
  var summary = document.querySelector("[data-focus-on-load]");
  if (summary) summary.focus();
})();
