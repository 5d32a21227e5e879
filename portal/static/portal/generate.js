// The Generate ISO page works without this file; with it, the page hides what DHCP
// makes useless, splits a pasted FQDN, explains bond names, checks every field as it is
// typed with the API's own rules (POST isos/validate, which builds nothing; the passwords
// are checked here and never sent for that), and says when the download really started
// (a one-time cookie the download's answer sets). The server still checks everything.
(function () {
  "use strict";
  var form = document.getElementById("generate-form");
  if (!form) { return; }
  var wording = JSON.parse(document.getElementById("page-wording").textContent);
  var keys = new RegExp(wording.keys, "g");

  // The API's message in the page's words, as isos/page_messages.py words it.
  function pageMessage(message) {
    wording.phrases.forEach(function (phrase) { message = message.split(phrase[0]).join(phrase[1]); });
    message = message.replace(keys, function (key) { return wording.labels[key]; });
    return message.charAt(0).toUpperCase() + message.slice(1);
  }

  function input(name) { return document.getElementById("id_" + name); }

  // DHCP on: the static addresses are not used, so hide them and keep them out of the
  // submission (a disabled fieldset's inputs are not sent).
  var dhcp = input("dhcp");
  var staticAddresses = document.getElementById("static-addresses");
  function showStaticAddresses() {
    staticAddresses.hidden = dhcp.checked;
    staticAddresses.disabled = dhcp.checked;
    ["ipAddress", "ipNetmask", "ipGateway"].forEach(function (name) { input(name).required = !dhcp.checked; });
  }
  dhcp.addEventListener("change", showStaticAddresses);
  showStaticAddresses();

  // A full name typed into the host name is split at its first dot when the domain is
  // empty (the server does the same without JavaScript).
  var hostName = input("hostName");
  var domainName = input("domainName");
  hostName.addEventListener("change", function () {
    var value = hostName.value.trim();
    var dot = value.indexOf(".");
    if (dot > 0 && domainName.value.trim() === "") {
      hostName.value = value.slice(0, dot);
      domainName.value = value.slice(dot + 1);
    }
  });

  // bondN makes an LACP bond: say so as the name is typed.
  var interfaceName = input("interfaceName");
  var bondHint = document.querySelector('[data-live-hint-for="interfaceName"]');
  function explainInterface() {
    var match = /^bond\d+/.test(interfaceName.value.trim());
    bondHint.textContent = match
      ? interfaceName.value.trim() + " will be an LACP bond (802.3ad, miimon=100, fast LACP rate)."
      : "";
  }
  interfaceName.addEventListener("input", explainInterface);
  explainInterface();

  // ---- Checking as the operator types ----

  var names = Object.keys(wording.labels);
  var rootPass = input("rootPass");
  var confirmRootPass = input("confirmRootPass");
  var touched = {};
  var shown = {}; // field name -> messages shown beside it
  names.forEach(function (name) {
    if (document.getElementById("id_" + name + "-error")) { touched[name] = true; }
  });
  form.noValidate = true; // the browser's own bubbles would come before these messages

  // The API's request body, as the form would post it, without the root password.
  function requestBody() {
    var body = {};
    names.forEach(function (name) {
      var element = input(name);
      if (!element || name === "rootPass" || name === "confirmRootPass") { return; }
      if (name === "dhcp") { body.dhcp = element.checked ? "yes" : "no"; return; }
      if (element.disabled || element.closest("fieldset:disabled")) { return; }
      body[name] = element.value;
    });
    return body;
  }

  // The passwords' rules, checked here so that they never leave the browser before the submit.
  function passwordErrors() {
    var errors = {};
    if (rootPass.value === "") {
      errors.rootPass = [pageMessage("rootPass is required")];
    } else if (rootPass.value.length > 1024) {
      errors.rootPass = [pageMessage("rootPass must be at most 1024 characters")];
    }
    if (rootPass.value !== "" && confirmRootPass.value !== rootPass.value) {
      errors.confirmRootPass = [pageMessage(wording.mismatch)];
    }
    return errors;
  }

  function describedBy(name, hasError) {
    var ids = hasError ? ["id_" + name + "-error"] : [];
    if (document.getElementById("id_" + name + "-hint")) { ids.push("id_" + name + "-hint"); }
    return ids.join(" ");
  }

  function showFieldErrors(name, messages) {
    var element = input(name);
    if (!element) { return; }
    var field = element.closest(".field") || element.closest(".switch-row");
    var box = document.getElementById("id_" + name + "-error");
    if (messages.length) {
      if (!box) {
        box = document.createElement("p");
        box.className = "field-error";
        box.id = "id_" + name + "-error";
        element.insertAdjacentElement("afterend", box);
      }
      box.replaceChildren.apply(box, messages.map(function (message) {
        var line = document.createElement("span");
        line.textContent = message;
        return line;
      }));
      element.setAttribute("aria-invalid", "true");
      if (field) { field.classList.add("has-error"); }
      shown[name] = messages;
    } else {
      if (box) { box.remove(); }
      element.removeAttribute("aria-invalid");
      if (field) { field.classList.remove("has-error"); }
      delete shown[name];
    }
    var ids = describedBy(name, messages.length > 0);
    if (ids) { element.setAttribute("aria-describedby", ids); } else { element.removeAttribute("aria-describedby"); }
  }

  function summary() { return document.getElementById("error-summary"); }

  // The summary at the top: every shown message with a link to its field.
  function showSummary(create) {
    var existing = summary();
    var items = [];
    names.forEach(function (name) {
      (shown[name] || []).forEach(function (message) { items.push([name, message]); });
    });
    if (!items.length) {
      if (existing) { existing.remove(); }
      return null;
    }
    if (!existing && !create) { return null; }
    var box = document.createElement("div");
    box.className = "alert error";
    box.id = "error-summary";
    box.setAttribute("role", "alert");
    box.tabIndex = -1;
    box.setAttribute("aria-labelledby", "error-summary-title");
    var title = document.createElement("h2");
    title.id = "error-summary-title";
    title.textContent = "Please fix " + items.length + " problem" + (items.length === 1 ? "" : "s");
    var list = document.createElement("ul");
    items.forEach(function (item) {
      var link = document.createElement("a");
      link.href = "#id_" + item[0];
      link.textContent = item[1];
      var entry = document.createElement("li");
      entry.appendChild(link);
      list.appendChild(entry);
    });
    box.append(title, list);
    if (existing) { existing.replaceWith(box); } else { form.insertAdjacentElement("beforebegin", box); }
    return box;
  }

  var checkUrl = form.dataset.checkUrl;
  var sequence = 0;

  // Ask the API (nothing is built or audited); resolves to {field: [messages]} in the
  // page's words, or null when the check itself could not be made.
  function check() {
    var mine = ++sequence;
    if (!checkUrl) { return Promise.resolve(null); } // the host has no such route: checked on submit
    return fetch(checkUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(requestBody())
    }).then(function (response) {
      if (response.status !== 200 && response.status !== 400) { return null; }
      return response.json().then(function (answer) {
        if (!answer.response) { return null; }
        var errors = {};
        Object.keys(answer.response.errors).forEach(function (name) {
          if (name === "rootPass") { return; } // not sent: checked here
          errors[name] = answer.response.errors[name].map(pageMessage);
        });
        var local = passwordErrors();
        Object.keys(local).forEach(function (name) { errors[name] = local[name]; });
        return mine === sequence ? errors : undefined;
      });
    }).catch(function () { return null; });
  }

  function showErrors(errors, all) {
    names.forEach(function (name) {
      if (all) { touched[name] = true; }
      if (touched[name]) { showFieldErrors(name, errors[name] || []); }
    });
    showSummary(all);
  }

  var timer = null;
  function checkSoon(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      check().then(function (errors) {
        if (errors) { showErrors(errors, false); }
      });
    }, delay);
  }
  names.forEach(function (name) {
    var element = input(name);
    if (!element) { return; }
    element.addEventListener("input", function () { checkSoon(500); });
    element.addEventListener("change", function () { touched[name] = true; checkSoon(0); });
  });
  dhcp.addEventListener("change", function () { checkSoon(0); });

  // ---- Submitting, and knowing the download started ----

  var button = document.getElementById("generate-button");
  var status = document.getElementById("generate-status");
  var started = document.getElementById("download-started");
  var cookieName = "isoDownload";
  var waiting = null;

  function readDownloadCookie(token) {
    var found = null;
    document.cookie.split(";").forEach(function (part) {
      var pair = part.trim().split("=");
      if (pair[0] !== cookieName || !pair[1]) { return; }
      try {
        var text = atob(pair[1].replace(/-/g, "+").replace(/_/g, "/"));
        var payload = JSON.parse(text);
        if (payload.token === token) { found = payload; }
      } catch (ignored) { /* not ours */ }
    });
    return found;
  }

  function size(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function downloadStarted(payload) {
    document.cookie = cookieName + "=; Max-Age=0; path=" + form.getAttribute("action") + "; SameSite=Strict";
    // The refusal is over: no stale banner nor field error stays.
    names.forEach(function (name) { showFieldErrors(name, []); });
    document.querySelectorAll("#error-summary, .alert.error").forEach(function (box) { box.remove(); });
    document.title = document.title.replace(/^Error: /, "");
    document.getElementById("download-name").textContent = payload.name;
    document.getElementById("download-size").textContent = payload.size === null ? "" : size(payload.size);
    var history = document.getElementById("download-history");
    history.href = form.dataset.historyUrl + "?fqdn=" + encodeURIComponent(payload.fqdn) + "#build-" + payload.build;
    started.hidden = false;
    status.textContent = "";
    button.disabled = false;
    started.focus();
  }

  function waitForDownload(token) {
    window.clearInterval(waiting);
    waiting = window.setInterval(function () {
      var payload = readDownloadCookie(token);
      if (payload) {
        window.clearInterval(waiting);
        downloadStarted(payload);
      }
    }, 200);
  }

  function newToken() {
    var bytes = new Uint8Array(18);
    window.crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function send(asUrl) {
    // "Get a URL for virtual media": the answer is this page with the URL, not a download.
    var action = form.querySelector('input[name="action"]');
    if (action) { action.remove(); }
    if (asUrl) {
      action = document.createElement("input");
      action.type = "hidden";
      action.name = "action";
      action.value = "url";
      form.appendChild(action);
      status.textContent = "Making the URL… the ISO is read once for its SHA-256.";
      button.disabled = true;
      form.submit();
      return;
    }
    var token = newToken();
    var field = form.querySelector('input[name="downloadToken"]');
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "downloadToken";
      form.appendChild(field);
    }
    field.value = token;
    started.hidden = true;
    status.textContent = "Building the ISO… the download starts in a moment.";
    button.disabled = true;
    waitForDownload(token);
    form.submit(); // the answer is the ISO (the page stays) or the page with its messages
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var asUrl = Boolean(event.submitter && event.submitter.name === "action" && event.submitter.value === "url");
    window.clearTimeout(timer);
    button.disabled = true;
    status.textContent = "Checking…";
    check().then(function (errors) {
      button.disabled = false;
      status.textContent = "";
      if (errors === undefined) { return; }
      if (errors === null) { send(asUrl); return; } // no answer: the server checks it on submit
      showErrors(errors, true);
      var box = summary();
      if (box) { box.focus(); } else { send(asUrl); }
    });
  });

  // ---- Copy from a previous host ----
  // Without this, the copy box is a GET the server answers with the prefilled form.

  var copyForm = document.getElementById("copy-form");
  if (copyForm) {
    var copyInput = document.getElementById("copy-from");
    var copyList = document.getElementById("previous-hosts");
    var copyHint = document.getElementById("copy-from-hint");
    var known = {}; // lower-case FQDN -> the host as the server described it
    var copyTimer = null;

    var fetchHosts = function (text) {
      return fetch(copyForm.dataset.hostsUrl + "?q=" + encodeURIComponent(text), {
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (answer) {
        if (!answer) { return []; }
        copyList.replaceChildren.apply(copyList, answer.hosts.map(function (host) {
          known[host.fqdn.toLowerCase()] = host;
          var option = document.createElement("option");
          option.value = host.fqdn;
          option.label = host.osversion + " · " + host.startedAt.slice(0, 10);
          return option;
        }));
        return answer.hosts;
      }).catch(function () { return []; });
    };

    var setHint = function (text, problem) {
      copyHint.textContent = text;
      copyHint.classList.toggle("field-error", problem);
      copyForm.classList.toggle("has-error", problem);
      if (problem) { copyInput.setAttribute("aria-invalid", "true"); } else { copyInput.removeAttribute("aria-invalid"); }
    };

    // Every field but the passwords, from the build's stored settings.
    var copyHost = function (host) {
      var settings = host.settings;
      names.forEach(function (name) {
        var element = input(name);
        if (!element || name === "rootPass" || name === "confirmRootPass") { return; }
        var value = settings[name];
        if (name === "dhcp") {
          element.checked = value === true || ["yes", "true", "1"].indexOf(String(value).toLowerCase()) >= 0;
          return;
        }
        element.value = value === undefined || value === null ? "" : String(value);
        touched[name] = true;
      });
      showStaticAddresses();
      explainInterface();
      var management = document.querySelector("details.section");
      if (management && ["mgmtIpAddress", "mgmtIpNetmask", "mgmtIpGateway", "mgmtInterface"].some(function (name) {
        return input(name).value !== "";
      })) { management.open = true; }
      setHint("Copied from " + host.fqdn + " (" + host.osversion + ", " + host.startedAt.slice(0, 10) +
        "): change the host name, then type the root password.", false);
      checkSoon(0);
      hostName.focus();
      hostName.select();
    };

    var copyNamed = function (text) {
      var wanted = text.trim().toLowerCase();
      if (!wanted) { return; }
      var found = known[wanted];
      if (found) { copyHost(found); return; }
      fetchHosts(text.trim()).then(function () {
        if (known[wanted]) { copyHost(known[wanted]); } else {
          setHint("No earlier build of “" + text.trim() + "” that you may see.", true);
        }
      });
    };

    copyInput.addEventListener("input", function (event) {
      window.clearTimeout(copyTimer);
      // Picking a suggestion (mouse or keyboard) copies at once.
      if (event.inputType === "insertReplacementText" || !event.inputType) {
        if (known[copyInput.value.trim().toLowerCase()]) { copyHost(known[copyInput.value.trim().toLowerCase()]); return; }
      }
      copyTimer = window.setTimeout(function () { fetchHosts(copyInput.value.trim()); }, 250);
    });
    copyForm.addEventListener("submit", function (event) {
      event.preventDefault();
      copyNamed(copyInput.value);
    });
    fetchHosts("");
  }

  // After a refused submission, take keyboard and screen reader users to the summary.
  var refused = summary();
  if (refused) { refused.focus(); }
}());

// "Copy" beside an ISO URL: the text of the input it names, to the clipboard.
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) { return; }
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
}());
