/*! Link SDK link.js (FlexpaLink) | Apache-2.0 | Types: /link.d.ts */
(function (w, d) {
  'use strict';
  // Loading the script twice binds nothing twice: the first copy stays in charge.
  if (w.FlexpaLink && w.FlexpaLink._linkSdk) return;
  var me = d.currentScript;
  var base = me && me.src ? new URL(me.src, location.href).origin : location.origin;
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var active = null;

  function nonce() {
    var a = new Uint8Array(16);
    w.crypto.getRandomValues(a);
    return [].map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }
  // Integrator callbacks never break the flow: their exceptions are rethrown asynchronously.
  function call(f) {
    var args = [].slice.call(arguments, 1);
    if (typeof f === 'function') {
      try { f.apply(null, args); } catch (e) { setTimeout(function () { throw e; }); }
    }
  }
  function check(o, endpoint) {
    if (typeof o.publishableKey !== 'string' || !/^pk_(test|live)_[\w-]+$/.test(o.publishableKey)) return 'INVALID_PUBLISHABLE_KEY';
    if (!o.user || typeof o.user.externalId !== 'string' || !o.user.externalId.trim()) return 'INVALID_USER';
    if (o.usage !== 'ONE_TIME' && o.usage !== 'MULTIPLE') return 'INVALID_USAGE';
    if (endpoint != null && (typeof endpoint !== 'string' || !UUID.test(endpoint))) return 'INVALID_ENDPOINT';
    return null;
  }

  function create(options) {
    var o = options || {};
    var handle = {
      // Must be called from a user gesture; everything up to inserting the modal is synchronous.
      open: function (openOptions) {
        if (active) return;
        var endpoint = (openOptions && openOptions.endpoint) || o.endpoint || null;
        var s = { n: nonce(), done: false, loaded: false, syncing: false };
        active = s;
        var emit = function (name, meta) { call(o.onEvent, name, meta || {}); };
        var wrap = null, frame = null, watchdog = null, inerted = [], overflow = '', before = d.activeElement;
        function end(kind, value) {
          if (s.done) return;
          s.done = true;
          if (active === s) active = null;
          clearTimeout(watchdog);
          w.removeEventListener('message', onMessage);
          d.removeEventListener('keydown', onKey, true);
          if (wrap && wrap.parentNode) wrap.parentNode.removeChild(wrap);
          inerted.forEach(function (el) { el.inert = false; });
          if (wrap) d.documentElement.style.overflow = overflow;
          if (before && before.focus) try { before.focus(); } catch (e) { /* gone */ }
          if (kind === 'success') { emit('SUCCESS', {}); call(o.onSuccess, value); }
          else { emit('EXIT', value); call(o.onExit, value); }
        }
        function onMessage(e) {
          if (e.origin !== base || !frame || e.source !== frame.contentWindow) return;
          var m = e.data;
          if (!m || m.source !== 'flexpa-link' || m.nonce !== s.n || s.done) return;
          if (m.type === 'load') {
            if (!s.loaded) { s.loaded = true; clearTimeout(watchdog); call(o.onLoad); }
          } else if (m.type === 'event') {
            emit(String(m.name), m.metadata || {});
          } else if (m.type === 'syncing' && typeof m.publicToken === 'string') {
            if (!s.syncing) { s.syncing = true; emit('PAYER_AUTHORIZED', {}); emit('SYNC_STARTED', {}); call(o.onSyncing, m.publicToken); }
          } else if (m.type === 'success' && typeof m.publicToken === 'string') {
            end('success', m.publicToken);
          } else if (m.type === 'exit') {
            // A hint is for the integrator's developer (e.g. an origin to register), never for the patient.
            if (typeof m.hint === 'string' && m.hint && window.console) console.error('FlexpaLink: ' + m.hint.slice(0, 500));
            end('exit', { code: String(m.code || 'PATIENT_CANCELLED') });
          }
        }
        function onKey(e) { if (e.key === 'Escape') end('exit', { code: 'PATIENT_CANCELLED' }); }
        s.end = end;
        emit('OPEN', endpoint ? { endpointId: endpoint } : {});
        var bad = check(o, endpoint);
        if (bad) { end('exit', { code: bad }); return; }

        var q = new URLSearchParams({
          publishableKey: o.publishableKey,
          externalId: o.user.externalId,
          usage: o.usage,
          origin: location.origin,
          nonce: s.n,
          autoExit: String(o.autoExit !== false),
          skipSyncing: String(!!o.skipSyncing),
          skipExplainer: String(!!o.skipExplainer)
        });
        if (endpoint) q.set('endpoint', endpoint);
        if (o.requestedResources && o.requestedResources.length) q.set('requestedResources', [].concat(o.requestedResources).join(','));
        if (o.language) q.set('language', String(o.language));

        wrap = d.createElement('div');
        wrap.setAttribute('data-flexpa-link', '');
        wrap.style.cssText = 'position:fixed;top:0;left:0;right:0;bottom:0;z-index:2147483647;';
        frame = d.createElement('iframe');
        frame.src = base + '/link?' + q.toString();
        frame.title = 'Connect your health plan';
        frame.style.cssText = 'border:0;width:100%;height:100%;display:block;background:transparent;color-scheme:normal;';
        wrap.appendChild(frame);
        // The page behind the modal takes no focus or clicks while it is open.
        [].forEach.call(d.body.children, function (el) { if (!el.inert) { el.inert = true; inerted.push(el); } });
        overflow = d.documentElement.style.overflow;
        d.documentElement.style.overflow = 'hidden';
        w.addEventListener('message', onMessage);
        d.addEventListener('keydown', onKey, true);
        d.body.appendChild(wrap);
        frame.focus();
        // A modal that never reports in (unknown key, unregistered origin blocked by frame-ancestors).
        watchdog = setTimeout(function () {
          if (s.loaded) return;
          if (window.console) console.error('FlexpaLink: the Link window did not load within 20 s: check that ' + base + ' is reachable and this page\'s origin is an allowed origin of the app.');
          end('exit', { code: 'INVALID_PUBLISHABLE_KEY' });
        }, 20000);
      },
      // Closes an open modal as if the patient cancelled.
      exit: function () { if (active && active.end) active.end('exit', { code: 'PATIENT_CANCELLED' }); }
    };
    return handle;
  }

  w.FlexpaLink = { create: create, version: '1.0.0', _linkSdk: true };
})(window, document);
