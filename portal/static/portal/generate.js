// The Generate ISO page works without this file; with it, the page hides what DHCP
// makes useless, splits a pasted FQDN, explains bond names and checks the password
// confirmation before the round trip. The server still checks everything.
(function () {
  "use strict";
  var form = document.getElementById("generate-form");
  if (!form) { return; }

  // DHCP on: the static addresses are not used, so hide them and keep them out of the
  // submission (a disabled fieldset's inputs are not sent).
  var dhcp = document.getElementById("id_dhcp");
  var staticAddresses = document.getElementById("static-addresses");
  var ipv4Inputs = ["id_ipAddress", "id_ipNetmask", "id_ipGateway"].map(function (id) {
    return document.getElementById(id);
  });
  function showStaticAddresses() {
    staticAddresses.hidden = dhcp.checked;
    staticAddresses.disabled = dhcp.checked;
    ipv4Inputs.forEach(function (input) { input.required = !dhcp.checked; });
  }
  dhcp.addEventListener("change", showStaticAddresses);
  showStaticAddresses();

  // A full name typed into the host name is split at its first dot when the domain is
  // empty (the server does the same without JavaScript).
  var hostName = document.getElementById("id_hostName");
  var domainName = document.getElementById("id_domainName");
  hostName.addEventListener("change", function () {
    var value = hostName.value.trim();
    var dot = value.indexOf(".");
    if (dot > 0 && domainName.value.trim() === "") {
      hostName.value = value.slice(0, dot);
      domainName.value = value.slice(dot + 1);
    }
  });

  // bondN makes an LACP bond: say so as the name is typed.
  var interfaceName = document.getElementById("id_interfaceName");
  var bondHint = document.querySelector('[data-live-hint-for="interfaceName"]');
  function explainInterface() {
    var match = /^bond\d+/.test(interfaceName.value.trim());
    bondHint.textContent = match
      ? interfaceName.value.trim() + " will be an LACP bond (802.3ad, miimon=100, fast LACP rate)."
      : "";
  }
  interfaceName.addEventListener("input", explainInterface);
  explainInterface();

  // The confirmation must match: the browser says so before submitting.
  var rootPass = document.getElementById("id_rootPass");
  var confirmRootPass = document.getElementById("id_confirmRootPass");
  function checkConfirmation() {
    var differs = confirmRootPass.value !== "" && confirmRootPass.value !== rootPass.value;
    confirmRootPass.setCustomValidity(differs ? "The two passwords differ." : "");
  }
  rootPass.addEventListener("input", checkConfirmation);
  confirmRootPass.addEventListener("input", checkConfirmation);

  // The answer is a download, so the page stays: say what is happening, and clear the
  // passwords once the browser has taken them.
  var button = document.getElementById("generate-button");
  var status = document.getElementById("generate-status");
  form.addEventListener("submit", function () {
    status.textContent = "Building the ISO… your browser will show the download.";
    button.disabled = true;
    window.setTimeout(function () {
      rootPass.value = "";
      confirmRootPass.value = "";
      button.disabled = false;
      status.textContent = "Your browser shows the download; History keeps the record.";
    }, 2500);
  });

  // After a refused submission, take keyboard and screen reader users to the summary.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
}());
