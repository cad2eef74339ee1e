/**
 * Types of `useFlexpaLink` (served at /link/v1/link-react.js, an ES module that imports `react` from the host app):
 * a React hook over the FlexpaLink global, which it loads from /link/v1/link.js when the page has not.
 */
import type { LinkCreateOptions, LinkRepairOptions } from './link';

/** What `useFlexpaLink` returns. */
export interface FlexpaLinkHook {
  /**
   * Opens Link with the latest options (call it from a click, with no `await` before it). Does nothing until
   * `ready`, or while another Link modal is open on the page.
   */
  open: (options?: { endpoint?: string }) => void;
  /** `true` once link.js is loaded and this component's handle exists (until it unmounts). */
  ready: boolean;
  /** Set when link.js could not be loaded (network, CSP); `null` otherwise. */
  error: Error | null;
}

/**
 * One Link handle per mounted component. Options and callbacks are read from the latest render when used (no
 * memoising needed). Each `open()` ends once, with `onSuccess` or `onExit`, as in link.d.ts; unmounting closes this
 * component's open modal and silences its callbacks (none fires after unmount).
 */
export function useFlexpaLink(options: LinkCreateOptions): FlexpaLinkHook;
/** Repair mode (docs/repair.md): the same hook with `repairToken`. */
export function useFlexpaLink(options: LinkRepairOptions): FlexpaLinkHook;
