/*! Link SDK useFlexpaLink (React hook) | Apache-2.0 | Types: /link/v1/link-react.d.ts | ES module, React from the host */
// useFlexpaLink(options) -> {open, ready, error}: a thin layer over the FlexpaLink global of link.js, which owns
// every rule of the flow (one modal at a time, each ending once, option checks). This module adds only React's
// lifecycle:
// - link.js is loaded once per page (shared by every instance) from this module's own directory
//   (/link/v1/link.js) unless `window.FlexpaLink` already exists; a failed load sets `error` (a later mount
//   tries again).
// - One handle per mounted component, created when link.js is there (`ready` becomes true) and closed on
//   unmount: an open modal of this component closes, and no callback of it fires afterwards. StrictMode's
//   mount, unmount, mount creates one handle.
// - The options are read when they are used: the data options (`publishableKey`, `user`, …) at `open()`, the
//   callbacks when they fire, always from the latest render; so they need no memoising.
// React comes from the host app: the bare specifier `react` is resolved by the host's bundler or import map, so
// the hooks run on the app's own copy of React.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';

const SCRIPT = new URL('link.js', import.meta.url).href;
let loading = null;

/** Resolves with the FlexpaLink global, adding link.js to the page once if it is missing. */
function loadLink() {
  if (window.FlexpaLink) return Promise.resolve(window.FlexpaLink);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      const fail = () => {
        loading = null;
        script.remove();
        reject(new Error('FlexpaLink: could not load ' + SCRIPT));
      };
      script.src = SCRIPT;
      script.async = true;
      script.onload = () => (window.FlexpaLink ? resolve(window.FlexpaLink) : fail());
      script.onerror = fail;
      document.head.appendChild(script);
    });
  }
  return loading;
}

export function useFlexpaLink(options) {
  const latest = useRef(options);
  useLayoutEffect(() => {
    latest.current = options;
  });
  const handle = useRef(null);
  const [ready, setReady] = useState(false);
  const [error, setError] = useState(null);

  useEffect(() => {
    let mounted = true;
    let mine = null;
    // What link.js reads: the latest options, with every callback silenced once this component is gone.
    const live = new Proxy({}, {
      get(_, key) {
        const value = latest.current ? latest.current[key] : undefined;
        if (typeof value !== 'function') return value;
        return (...args) => {
          const f = mounted && latest.current ? latest.current[key] : null;
          if (typeof f === 'function') return f(...args);
        };
      },
    });
    loadLink().then(
      (FlexpaLink) => {
        if (!mounted) return;
        mine = FlexpaLink.create(live);
        handle.current = mine;
        setError(null);
        setReady(true);
      },
      (e) => {
        if (mounted) setError(e);
      },
    );
    return () => {
      mounted = false;
      if (handle.current === mine) handle.current = null;
      setReady(false);
      if (mine) mine.exit();
    };
  }, []);

  // From a click (no await before it), as FlexpaLink's open(); does nothing until `ready`.
  const open = useCallback((openOptions) => {
    if (handle.current) handle.current.open(openOptions);
  }, []);

  return { open, ready, error };
}
