// The demo integrator page's behaviour: exactly what an integrator writes on their own page.
// 1. On a click, FlexpaLink.create({...}) then .open() on what it returns (synchronously: no await before open,
//    so the payer popup opened by Link is not blocked).
// 2. onSuccess(publicToken): send the public_token to OUR backend (/demo/api/exchange), which exchanges it
//    with the secret key; the browser never sees the secret key or the access token.
// 3. Show what the backend read through the FHIR API; poll again while the sync is running (429).
(function () {
  'use strict';
  var root = document.getElementById('demo');
  if (!root) return;
  var publishableKey = root.getAttribute('data-publishable-key');
  var externalId = root.getAttribute('data-external-id');
  var statusEl = document.getElementById('demo-status');
  var linksEl = document.getElementById('links');
  var pollTimer = null;

  function say(message) { statusEl.textContent = message; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      if (c == null) return;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  function text(v) { return v == null || v === '' ? '—' : String(v); }

  function money(value, currency) {
    if (typeof value !== 'number') return '—';
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'USD' }).format(value);
    } catch (e) { return value.toFixed(2) + ' ' + (currency || ''); }
  }

  // A table inside a named, keyboard-focusable region that scrolls sideways when the table is wider than
  // its card (arrow keys scroll it once focused). Each cell names its column (data-label), which the
  // stylesheet shows when narrow screens stack the cells instead of lining them up in columns.
  function table(caption, label, headers, rows, testid) {
    var thead = el('thead', {}, [el('tr', {}, headers.map(function (h) { return el('th', { scope: 'col' }, [h]); }))]);
    var tbody = el('tbody', {}, rows.map(function (r) {
      return el('tr', {}, r.map(function (c, i) { return el('td', { 'data-label': headers[i] }, [text(c)]); }));
    }));
    var t = el('table', { class: testid, 'data-testid': testid }, [el('caption', {}, [caption]), thead, tbody]);
    return el('div', { class: 'table-scroll', role: 'region', 'aria-label': label, tabindex: '0' }, [t]);
  }

  function renderLink(link) {
    var revoke = el('button', { type: 'button', class: 'secondary', 'data-testid': 'revoke' }, ['Revoke']);
    revoke.addEventListener('click', function () { revokeLink(link.id, revoke); });
    var head = el('div', { class: 'link-head' }, [el('h3', {}, [link.endpoint]), revoke]);
    var body = [];
    if (link.status === 'syncing') {
      body.push(el('p', { class: 'muted', 'data-testid': 'syncing' }, ['Your data is still being retrieved…']));
    } else if (link.status !== 'ready') {
      body.push(el('p', { class: 'error' }, [text(link.message)]));
    } else {
      var coverage = link.coverage || [];
      body.push(coverage.length
        ? table('Coverage', 'Coverage from ' + link.endpoint, ['Payer', 'Plan', 'Type', 'Status', 'Since'], coverage.map(function (c) {
            return [c.payor, (c.plan || []).join(', '), c.type, c.status, c.start];
          }), 'coverage')
        : el('p', { 'data-testid': 'coverage' }, ['No Coverage on file.']));
      var claims = link.claims || [];
      body.push(claims.length
        ? table('Claims (' + link.claims_total + ')', 'Claims from ' + link.endpoint, ['Date', 'Type', 'Provider', 'Paid', 'Status'], claims.map(function (c) {
            return [c.date, c.type, c.provider, money(c.amount, c.currency), c.status];
          }), 'claims')
        : el('p', { 'data-testid': 'claims' }, ['No claims on file.']));
    }
    return el('article', { class: 'link', 'data-testid': 'link', 'data-status': link.status }, [head].concat(body));
  }

  function loadRecords() {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    return fetch('/demo/api/records', { credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var links = data.links || [];
        linksEl.textContent = '';
        if (!links.length) {
          linksEl.appendChild(el('p', { class: 'muted' }, ['No plan linked yet.']));
          return;
        }
        links.forEach(function (l) { linksEl.appendChild(renderLink(l)); });
        var waits = links.filter(function (l) { return l.status === 'syncing'; })
          .map(function (l) { return l.retry_after || 2; });
        if (waits.length) {
          // The FHIR API answered 429 with Retry-After: come back when it said to.
          pollTimer = setTimeout(loadRecords, Math.min.apply(null, waits) * 1000);
        }
      })
      .catch(function () { say('Could not load your records.'); });
  }

  function post(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || 'Request failed'); return j; });
    });
  }

  function exchange(publicToken) {
    say('Plan linked. Exchanging the public_token on our backend…');
    return post('/demo/api/exchange', { public_token: publicToken })
      .then(function (res) { say('Linked ' + res.link.endpoint + '.'); return loadRecords(); })
      .catch(function (e) { say(e.message); });
  }

  function revokeLink(id, button) {
    button.disabled = true;
    post('/demo/api/revoke', { link: id })
      .then(function () { say('Link revoked: the data was deleted.'); return loadRecords(); })
      .catch(function (e) { button.disabled = false; say(e.message); });
  }

  document.getElementById('connect').addEventListener('click', function () {
    if (!window.FlexpaLink) { say('The Link script did not load.'); return; }
    var checked = document.querySelector('input[name="usage"]:checked');
    var link = window.FlexpaLink.create({
      publishableKey: publishableKey,
      user: { externalId: externalId },
      usage: checked ? checked.value : 'ONE_TIME',
      onSuccess: function (publicToken) { exchange(publicToken); },
      onExit: function (error) {
        say(error && error.code ? 'Link closed: ' + error.code : 'Link closed.');
      }
    });
    // Synchronously, inside the click: Link opens its modal (and later the payer popup) from this gesture.
    link.open();
  });

  var ownForm = document.getElementById('own-keys-form');
  if (ownForm) {
    ownForm.addEventListener('submit', function (event) {
      event.preventDefault();
      post('/demo/api/keys', {
        publishable_key: document.getElementById('own-pk').value,
        secret_key: document.getElementById('own-sk').value
      }).then(function () { window.location.reload(); }).catch(function (e) { say(e.message); });
    });
  }
  var resetKeys = document.getElementById('reset-keys');
  if (resetKeys) {
    resetKeys.addEventListener('click', function () {
      post('/demo/api/keys', {}).then(function () { window.location.reload(); }).catch(function (e) { say(e.message); });
    });
  }

  loadRecords();
})();
