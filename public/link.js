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
    // Repair mode: the user, usage and plan are the repaired authorization's (when given, they must match).
    if (o.repairToken != null) {
      if (typeof o.repairToken !== 'string' || !/^rpt_[\w-]{20,120}$/.test(o.repairToken)) return 'INVALID_REPAIR_TOKEN';
      if (o.user != null && (typeof o.user.externalId !== 'string' || !o.user.externalId.trim())) return 'INVALID_USER';
      if (o.usage != null && o.usage !== 'ONE_TIME' && o.usage !== 'MULTIPLE') return 'INVALID_USAGE';
      return null;
    }
    if (!o.user || typeof o.user.externalId !== 'string' || !o.user.externalId.trim()) return 'INVALID_USER';
    if (o.usage !== 'ONE_TIME' && o.usage !== 'MULTIPLE') return 'INVALID_USAGE';
    if (endpoint != null && (typeof endpoint !== 'string' || !UUID.test(endpoint))) return 'INVALID_ENDPOINT';
    return null;
  }

  function create(options) {
    var o = options || {};
    var mine = null; // the session this handle opened last: exit() closes that one only, never another handle's
    var handle = {
      // Must be called from a user gesture; everything up to inserting the modal is synchronous.
      open: function (openOptions) {
        if (active) return;
        var repair = o.repairToken != null;
        // A repair session goes to the repaired authorization's plan: no endpoint of its own, one plan.
        var endpoint = repair ? null : (openOptions && openOptions.endpoint) || o.endpoint || null;
        // step/code: the screen the modal shows (from its `load` messages); token: the latest public_token;
        // meta: its plan ({endpointId, reused}); linked: the tokens onSuccess had (multiplePlans).
        var s = { n: nonce(), done: false, loaded: false, step: null, code: null, token: null, meta: {}, linked: [] };
        // multiplePlans: onSuccess(public_token, metadata) once per plan linked, the modal stays open, and its
        // ending is one onExit: without an error once a plan was linked, else with its code as without it.
        var multi = o.multiplePlans === true && !repair;
        active = s;
        mine = s;
        var emit = function (name, meta) { call(o.onEvent, name, meta || {}); };
        var wrap = null, frame = null, watchdog = null, inerted = [], overflow = '', before = d.activeElement;
        // linger: keep the (hidden) frame a moment so it can tell our server how the modal was closed.
        function end(kind, value, linger) {
          if (s.done) return;
          s.done = true;
          if (active === s) active = null;
          clearTimeout(watchdog);
          w.removeEventListener('message', onMessage);
          d.removeEventListener('keydown', onKey, true);
          if (wrap && wrap.parentNode) {
            var gone = wrap;
            if (linger) {
              gone.style.display = 'none';
              setTimeout(function () { if (gone.parentNode) gone.parentNode.removeChild(gone); }, 1500);
            } else gone.parentNode.removeChild(gone);
          }
          inerted.forEach(function (el) { el.inert = false; });
          if (wrap) d.documentElement.style.overflow = overflow;
          if (before && before.focus) try { before.focus(); } catch (e) { /* gone */ }
          if (multi) {
            if (kind === 'success') linked(value);
            var error = s.linked.length ? undefined : value;
            emit('EXIT', error || {}); call(o.onExit, error);
          } else if (kind === 'success') { emit('SUCCESS', {}); call(o.onSuccess, value); }
          else { emit('EXIT', value); call(o.onExit, value); }
        }
        // multiplePlans: one plan linked (once per public_token).
        function linked(t) {
          if (!t || s.linked.indexOf(t) >= 0) return;
          s.linked.push(t);
          var meta = { endpointId: s.meta.endpointId || null, reused: !!s.meta.reused };
          emit('SUCCESS', meta); call(o.onSuccess, t, meta);
        }
        // Closing from this page (Esc while focus is here, or exit()): the same ending the modal's own close
        // button gives. After the payer authorized: onSuccess with the token onSyncing had; on an error screen:
        // that error's code; before: PATIENT_CANCELLED. The modal records it on our server (frame.js).
        function close() {
          if (s.done) return;
          if (s.loaded && frame && frame.contentWindow) {
            try { frame.contentWindow.postMessage({ source: 'flexpa-link-host', nonce: s.n, type: 'close' }, base); } catch (e) { /* gone */ }
          }
          var authorized = s.step === 'syncing' || s.step === 'success' || s.step === 'done';
          if (authorized && s.token) end('success', s.token, true);
          else end('exit', { code: s.step === 'error' && s.code ? s.code : 'PATIENT_CANCELLED' }, true);
        }
        function onMessage(e) {
          if (e.origin !== base || !frame || e.source !== frame.contentWindow) return;
          var m = e.data;
          if (!m || m.source !== 'flexpa-link' || m.nonce !== s.n || s.done) return;
          if (m.type === 'load') {
            s.step = typeof m.step === 'string' ? m.step : null;
            s.code = typeof m.code === 'string' && m.code ? m.code : null;
            if (!s.loaded) { s.loaded = true; clearTimeout(watchdog); call(o.onLoad); }
          } else if (m.type === 'event') {
            emit(String(m.name), m.metadata || {});
          } else if (m.type === 'syncing' && typeof m.publicToken === 'string' && m.publicToken) {
            // Once per public_token (a patient who retries after a failed sync authorizes again: a new token).
            if (m.publicToken !== s.token) {
              s.token = m.publicToken;
              s.meta = { endpointId: typeof m.endpointId === 'string' ? m.endpointId : null, reused: m.reused === true };
              emit('PAYER_AUTHORIZED', {});
              // The plan's sign-in renewed a link this user already had (same plan and patient): no duplicate.
              if (s.meta.reused) emit('PLAN_REUSED', { endpointId: s.meta.endpointId });
              emit('SYNC_STARTED', {}); call(o.onSyncing, m.publicToken);
            }
          } else if (m.type === 'success') {
            // The modal may no longer hold the token (e.g. it reloaded after the patient closed it): the one
            // onSyncing delivered is the same.
            var t = typeof m.publicToken === 'string' && m.publicToken ? m.publicToken : s.token;
            if (multi) { linked(t); if (m.final) end('exit', { code: 'PATIENT_CANCELLED' }); }
            else if (t) end('success', t);
          } else if (m.type === 'exit') {
            // A hint is for the integrator's developer (e.g. an origin to register), never for the patient.
            if (typeof m.hint === 'string' && m.hint && window.console) console.error('FlexpaLink: ' + m.hint.slice(0, 500));
            end('exit', { code: String(m.code || 'PATIENT_CANCELLED') });
          }
        }
        function onKey(e) { if (e.key === 'Escape') close(); }
        s.close = close;
        emit('OPEN', endpoint ? { endpointId: endpoint } : {});
        var bad = check(o, endpoint);
        if (bad) { end('exit', { code: bad }); return; }

        var q = new URLSearchParams({
          publishableKey: o.publishableKey,
          origin: location.origin,
          nonce: s.n,
          autoExit: String(o.autoExit !== false),
          skipSyncing: String(!!o.skipSyncing),
          skipExplainer: String(!!o.skipExplainer)
        });
        if (o.user && o.user.externalId) q.set('externalId', o.user.externalId);
        if (o.usage) q.set('usage', o.usage);
        // Single use: spent as the session starts (open Link again with a new one from POST /link/repair).
        if (repair) q.set('repairToken', o.repairToken);
        if (multi) q.set('multiplePlans', 'true');
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
      // Closes this handle's open modal as the patient's close button would (see close() above); a modal another
      // handle opened stays open.
      exit: function () { if (mine && mine === active && mine.close) mine.close(); }
    };
    return handle;
  }

  w.FlexpaLink = { create: create, version: '1.0.0', _linkSdk: true };
})(window, document);
