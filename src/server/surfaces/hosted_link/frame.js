// Link SDK: browser glue of the hosted Link screens (served at /link/frame.js, loaded by every screen).
// Talks to the host page (window.parent) and to the payer popup with exact target origins; every message carries
// the session nonce, and every receiver checks origin, source and nonce. Reactivity stays in the Leptos screens;
// this file only does what plain browser APIs do: postMessage, window.open, Esc, focus trap, status polling.
// Binding: in the modal the session's binder arrives in the first screen's URL fragment; it is kept in
// sessionStorage (or, where storage is blocked, carried in the fragment of each navigation), removed from the
// URL, and sent back as the X-Link-Bind header and the `bind` form field, so every step works with third-party
// cookies blocked. The payer window gets it through a form posted into it, never through a URL.
(function () {
  'use strict';
  var popupDone = document.getElementById('link-popup');
  if (popupDone) {
    // End of the payer sign-in, inside the popup: tell the modal (our own origin) and close.
    var pd = popupDone.dataset;
    try {
      if (window.opener && pd.nonce) {
        window.opener.postMessage({ source: 'link-popup', nonce: pd.nonce, result: pd.result, code: pd.exitCode || null }, location.origin);
      }
    } catch (e) { /* opener severed by the payer's COOP: the modal polls instead */ }
    setTimeout(function () { window.close(); }, 300);
    return;
  }
  var root = document.getElementById('link-root');
  if (!root) return;
  var d = root.dataset;
  if (d.step === 'expired') {
    // The session timed out: end it for the host page, with the session's own nonce and host when this screen
    // knows the session, else with what the last screen of this frame remembered.
    try {
      var ctx = d.nonce && d.hostOrigin ? { nonce: d.nonce, host: d.hostOrigin } : JSON.parse(sessionStorage.getItem('link-ctx') || 'null');
      if (ctx && ctx.host && window.parent !== window) {
        window.parent.postMessage({ source: 'flexpa-link', nonce: ctx.nonce, type: 'exit', code: 'PATIENT_CANCELLED' }, ctx.host);
      }
    } catch (e) { /* storage blocked */ }
    return;
  }
  var sid = d.linkSession, nonce = d.nonce, host = d.hostOrigin, step = d.step;
  var hosted = d.hosted === 'true';
  // multiplePlans: each plan's success goes to the host page at once (onSuccess per plan) and the modal stays
  // open; its ending (Done, ×) comes from the server's `done` step with `final`.
  var multi = d.multiplePlans === 'true' && !hosted;
  var framed = !!host && window.parent !== window;
  var base = '/link/s/' + sid;
  var popup = null, lastHref = null, timer = null, token = null;
  // The binder: from this page's fragment (then kept and removed from the URL), else from sessionStorage.
  var bind = null, kept = false;
  (function () {
    var m = /(?:^#|&)bind=([A-Za-z0-9_-]{16,128})(?:&|$)/.exec(location.hash);
    var key = 'link-bind:' + sid;
    try {
      if (m) sessionStorage.setItem(key, m[1]);
      bind = sessionStorage.getItem(key);
      kept = !!bind;
    } catch (e) { /* storage blocked (third-party storage off): carry it in the URL instead */ }
    if (!bind && m) bind = m[1];
    if (m && kept) { try { history.replaceState(history.state, '', location.pathname + location.search); } catch (e) { /* keep */ } }
  })();
  // A URL of ours with the binder in its fragment when storage cannot keep it (the fragment survives redirects).
  function carry(url) { return bind && !kept ? url.split('#')[0] + '#bind=' + bind : url; }
  if (d.brand) {
    root.style.setProperty('--brand', d.brand);
    root.style.setProperty('--brand-ink', d.brandInk || '#ffffff');
  }

  function post(msg) {
    if (!framed) return;
    msg.source = 'flexpa-link';
    msg.nonce = nonce;
    window.parent.postMessage(msg, host);
  }
  // Every step goes to the host page's onEvent; the steps only this page sees also go to the server (a beacon,
  // bound like every step) so the session's recorded events are complete.
  function ev(name, meta) {
    meta = meta || {};
    post({ type: 'event', name: name, metadata: meta });
    if (['SEARCH', 'ENDPOINT_SELECTED', 'POPUP_BLOCKED', 'POPUP_CLOSED'].indexOf(name) < 0) return;
    var f = { name: name };
    if (name === 'SEARCH') f.queryLength = String(meta.queryLength || 0);
    if (name === 'ENDPOINT_SELECTED') f.endpoint = meta.endpointId || '';
    beacon('/event', f);
  }
  // Once this page navigates away (a form the patient sent, or a reload or finish of our own), it starts no other
  // navigation: a reload racing the close button's POST would drop the redirect that answers it, and with it
  // the hosted flow's return to the app.
  var leaving = false;
  function leave() {
    if (leaving) return false;
    leaving = true;
    clearInterval(timer);
    return true;
  }
  // (A URL that differs from this page's at most in its fragment would not load again: reload it then.)
  function reload(q) {
    if (!leave()) return;
    var to = new URL(carry(base + (q || '')), location.href).href;
    if (to === location.href) location.reload(); else location.replace(to);
  }
  // Back to a page kept in the back/forward cache: its step may be stale; ask the server again.
  window.addEventListener('pageshow', function (e) { if (e.persisted) location.reload(); });
  function status() {
    var h = bind ? { 'X-Link-Bind': bind } : {};
    return fetch(base + '/status', { cache: 'no-store', credentials: 'same-origin', headers: h }).then(function (r) { return r.json(); }).then(function (s) {
      // Not this session's browser (its binding was lost): the modal ends with that code.
      if (s && s.step === 'unbound') { clearInterval(timer); closePopup(); post({ type: 'exit', code: s.exitCode || 'BROWSER_MISMATCH' }); }
      return s;
    });
  }
  function beacon(path, fields) {
    var body = new URLSearchParams(fields || {});
    if (bind) body.set('bind', bind);
    if (navigator.sendBeacon) navigator.sendBeacon(base + path, body);
  }
  function closePopup() { try { if (popup && !popup.closed) popup.close(); } catch (e) { /* ignore */ } }
  function submit(f) { if (f.requestSubmit) f.requestSubmit(); else f.submit(); }

  try { if (host) sessionStorage.setItem('link-ctx', JSON.stringify({ nonce: nonce, host: host })); } catch (e) { /* blocked */ }
  // The host page keeps the current step (and an error's code) to close the modal the same way from its side.
  post({ type: 'load', step: step, code: step === 'error' ? (d.exitCode || undefined) : undefined });
  var title = document.getElementById('link-title');
  if (title && title.focus) title.focus({ preventScroll: true });

  // Keyboard: Esc closes (same as the close button); Tab stays inside the dialog.
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') {
      var f = document.getElementById('link-close-form');
      if (f) { e.preventDefault(); closePopup(); submit(f); }
    } else if (e.key === 'Tab') {
      var els = [].filter.call(root.querySelectorAll('a[href],button:not([disabled]),input:not([disabled]):not([type=hidden]),select,textarea,[tabindex="0"]'),
        function (el) { return el.offsetParent !== null; });
      if (!els.length) return;
      var first = els[0], last = els[els.length - 1], a = document.activeElement;
      if (e.shiftKey && (a === first || !root.contains(a) || a === title)) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && (a === last || !root.contains(a))) { e.preventDefault(); first.focus(); }
    }
  });

  document.addEventListener('submit', function (e) {
    var s = e.submitter, f = e.target;
    if (!leave()) { e.preventDefault(); return; }
    // Our forms carry the binder: as a field of a post, and in the action's fragment when storage is blocked.
    if (bind && f.getAttribute('action') && f.getAttribute('action').indexOf(base) === 0) {
      if ((f.method || '').toLowerCase() === 'post') {
        var input = f.querySelector('input[name="bind"]') || document.createElement('input');
        input.type = 'hidden'; input.name = 'bind'; input.value = bind;
        if (!input.parentNode) f.appendChild(input);
      }
      f.setAttribute('action', carry(f.getAttribute('action')));
    }
    if (s && s.getAttribute('data-event')) ev(s.getAttribute('data-event'));
    if (f.getAttribute('data-event') === 'SEARCH') ev('SEARCH', { queryLength: (f.q && f.q.value || '').length });
    if (f.hasAttribute('data-wait-cancel') || f.id === 'link-close-form') closePopup();
  }, true);

  var searchTimer = null;
  document.addEventListener('input', function (e) {
    if (e.target && e.target.id === 'link-q') {
      clearTimeout(searchTimer);
      var n = e.target.value.length;
      searchTimer = setTimeout(function () { ev('SEARCH', { queryLength: n }); }, 800);
    }
  });

  // Reveals the "sign in with your plan" panel in place, keeping the popup's handle.
  function showWait(kind) {
    var w = document.getElementById('link-wait');
    if (!w) return;
    [].forEach.call(w.parentNode.children, function (c) { if (c !== w) c.hidden = true; });
    w.hidden = false;
    [].forEach.call(w.querySelectorAll('[data-wait]'), function (p) { p.hidden = p.getAttribute('data-wait') !== kind; });
    var r = w.querySelector('[data-reopen]');
    if (r && lastHref) r.setAttribute('href', lastHref);
    var h = w.querySelector('h1');
    if (h) h.focus({ preventScroll: true });
  }

  function openPayer(href) {
    // Synchronous in the click handler: no await before window.open, so the browser allows the popup. The
    // window opens empty and the hand-off is posted into it with the binder (a partitioned cookie of this frame
    // would not reach a top-level window, and a URL would leak it).
    var wdt = 500, hgt = 700, name = 'link-payer-' + sid.slice(-8);
    var left = Math.max(0, (screen.width - wdt) / 2), top = Math.max(0, (screen.height - hgt) / 2);
    popup = window.open('', name, 'popup,width=' + wdt + ',height=' + hgt + ',left=' + left + ',top=' + top);
    if (popup) {
      var f = document.createElement('form');
      f.method = 'post'; f.action = base + '/handoff'; f.target = name; f.hidden = true;
      var fields = { endpoint: new URL(href, location.href).searchParams.get('endpoint') || '', bind: bind || '' };
      Object.keys(fields).forEach(function (k) {
        var i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = fields[k]; f.appendChild(i);
      });
      document.body.appendChild(f);
      f.submit();
      f.parentNode.removeChild(f);
      ev('HANDOFF', {});
      showWait('waiting');
    } else {
      ev('POPUP_BLOCKED', {});
      showWait('blocked');
    }
    watch(1000);
  }

  document.addEventListener('click', function (e) {
    var t = e.target && e.target.closest ? e.target : null;
    if (!t) return;
    var c = t.closest('[data-connect],[data-reopen]');
    if (c && !hosted) {
      e.preventDefault();
      if (c.hasAttribute('data-connect')) {
        lastHref = c.href;
        ev('ENDPOINT_SELECTED', { endpointId: c.getAttribute('data-connect') });
      }
      openPayer(lastHref || c.href);
      return;
    }
    if (t.closest('[data-action="success"]')) { e.preventDefault(); succeed(); }
  });

  // link.js closed the modal from the host page (Esc there, or exit()): record the same ending on the server
  // (a beacon outlives this frame, which link.js removes a moment later).
  window.addEventListener('message', function (e) {
    if (!framed || e.source !== window.parent || e.origin !== host) return;
    var m = e.data;
    if (!m || m.source !== 'flexpa-link-host' || m.nonce !== nonce || m.type !== 'close') return;
    closePopup();
    beacon('/exit');
  });

  window.addEventListener('message', function (e) {
    if (e.origin !== location.origin || !popup || e.source !== popup) return;
    var m = e.data;
    if (!m || m.source !== 'link-popup' || m.nonce !== nonce) return;
    poll();
  });
  window.addEventListener('pagehide', closePopup);

  // Waits for the payer step to end; the popup's message only makes it quicker (COOP may cut the opener).
  function poll() {
    status().then(function (s) {
      if (s.step === 'expired') { clearInterval(timer); closePopup(); reload(''); return; }
      var waiting = s.step === 'payer' || s.step === 'authorized' || s.step === 'search' || s.step === 'connect';
      if (!waiting) { clearInterval(timer); closePopup(); reload(''); return; }
      if (popup && popup.closed) { popup = null; ev('POPUP_CLOSED', {}); showWait('closed'); }
    }).catch(function () { /* next tick */ });
  }
  function watch(ms) { if (!timer) timer = setInterval(poll, ms); }

  function succeed(final) {
    if (hosted) { if (leave()) location.assign(base + '/finish'); return; }
    post({ type: 'success', publicToken: token, endpointId: plan.endpointId, reused: plan.reused, final: final || undefined });
    if (!multi || final) beacon('/done');
  }
  // The plan in play, for the host page's metadata.
  var plan = { endpointId: null, reused: false };
  function announce(s) {
    token = s.publicToken || null;
    plan = { endpointId: s.endpointId || null, reused: !!s.reused };
    if (token) post({ type: 'syncing', publicToken: token, endpointId: plan.endpointId, reused: plan.reused });
  }

  if (step === 'payer' || step === 'authorized') watch(1500);
  if (step === 'done' && !hosted) {
    // The patient closed the modal after the payer authorized, or it already said success: tell the host page
    // now, with the token if the server still has it (link.js also kept the one onSyncing delivered).
    status().catch(function () { return {}; }).then(function (s) {
      announce(s);
      succeed(multi);
    });
  } else if (step === 'syncing' || step === 'success') {
    status().then(function (s) {
      announce(s);
      if (s.step !== step) { reload(''); return; }
      if (step === 'syncing') {
        timer = setInterval(function () {
          status().then(function (n) { if (n.step !== 'syncing') { clearInterval(timer); reload(''); } }).catch(function () {});
        }, 1500);
      } else if (multi) {
        // This plan is linked: the host page gets it now; the patient connects another or is done.
        if (token) succeed(false);
      } else if (d.autoExit === 'true') {
        setTimeout(succeed, hosted ? 1200 : 600);
      }
    }).catch(function () {});
  }
  if (step === 'error') ev('ERROR', { code: d.exitCode });
  if (step === 'exited') post({ type: 'exit', code: d.exitCode || 'PATIENT_CANCELLED', hint: d.hint || undefined });
})();
