/*! Link SDK <flexpa-link> element | Apache-2.0 | Types: /link/v1/link-element.d.ts | needs /link.js first */
(function (w, d) {
  'use strict';
  // Defining twice (the script loaded twice) is a no-op: the first definition stays.
  if (!w.customElements || w.customElements.get('flexpa-link')) return;

  // <flexpa-link publishable-key usage external-id [endpoint] [language] [skip-explainer] [skip-syncing]
  // [multiple-plans] [repair-token]>: a thin layer over the FlexpaLink global. A click on the element (its own button, or the
  // content you put inside) opens Link; the endings arrive as DOM events on the element: `syncing`
  // ({publicToken}), `success` ({publicToken}), `exit` ({code}) and `event` ({name, metadata}), each ending once.
  // With multiple-plans: `success` ({publicToken, endpointId, reused}) once per plan, then one `exit` whose code
  // is null once a plan was linked. FlexpaLink shows one modal at a time:
  // a click while another Link modal is open does nothing.
  function Element() {
    return Reflect.construct(HTMLElement, [], Element);
  }
  Element.prototype = Object.create(HTMLElement.prototype);
  Element.prototype.constructor = Element;
  Object.setPrototypeOf(Element, HTMLElement);

  function fire(el, type, detail) {
    el.dispatchEvent(new CustomEvent(type, { detail: detail, bubbles: true, composed: true }));
  }

  Element.prototype.connectedCallback = function () {
    if (this._linkReady) return;
    this._linkReady = true;
    if (!this.firstElementChild && !this.textContent.trim()) {
      var b = d.createElement('button');
      b.type = 'button';
      b.textContent = this.getAttribute('label') || 'Connect your health plan';
      this.appendChild(b);
    }
    var el = this;
    this.addEventListener('click', function (e) {
      if (e.defaultPrevented) return;
      el.open();
    });
  };

  /** Opens Link with the element's attributes (from a user gesture, like FlexpaLink's open()). */
  Element.prototype.open = function () {
    if (!w.FlexpaLink) {
      fire(this, 'exit', { code: 'LINK_SCRIPT_MISSING' });
      return;
    }
    var el = this;
    var attr = function (n) { var v = el.getAttribute(n); return v == null || v === '' ? undefined : v; };
    var multi = el.hasAttribute('multiple-plans');
    var options = {
      publishableKey: attr('publishable-key') || '',
      user: { externalId: attr('external-id') || '' },
      usage: attr('usage') || '',
      endpoint: attr('endpoint'),
      language: attr('language'),
      skipExplainer: el.hasAttribute('skip-explainer'),
      skipSyncing: el.hasAttribute('skip-syncing'),
      multiplePlans: multi,
      onSyncing: function (t) { fire(el, 'syncing', { publicToken: t }); },
      onSuccess: function (t, meta) {
        fire(el, 'success', meta ? { publicToken: t, endpointId: meta.endpointId, reused: meta.reused } : { publicToken: t });
      },
      onExit: function (e) { fire(el, 'exit', { code: e ? e.code || 'PATIENT_CANCELLED' : multi ? null : 'PATIENT_CANCELLED' }); },
      onEvent: function (name, metadata) { fire(el, 'event', { name: name, metadata: metadata || {} }); },
    };
    // Repair mode: the user and usage are the repaired authorization's; only the ones set are checked.
    var repairToken = attr('repair-token');
    if (repairToken) {
      options.repairToken = repairToken;
      if (!attr('external-id')) delete options.user;
      if (!attr('usage')) delete options.usage;
    }
    w.FlexpaLink.create(options).open();
  };

  w.customElements.define('flexpa-link', Element);
})(window, document);
