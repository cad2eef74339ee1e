/**
 * Types of `<flexpa-link>` (served at /link/v1/link-element.js, after /link.js): a custom element over the
 * FlexpaLink global. Attributes: `publishable-key`, `usage` (`ONE_TIME` | `MULTIPLE`), `external-id`, and optional
 * `endpoint`, `language`, `skip-explainer`, `skip-syncing`, `multiple-plans` (several plans in one sitting),
 * `label` (the default button's text); `repair-token` (repair mode: `usage` and `external-id` may then be left
 * out, see `LinkRepairOptions` in link.d.ts).
 */
import type { LinkEventName, LinkExitCode } from './link';

export interface FlexpaLinkElementEventMap {
  /** The payer authorized and the sync started. */
  syncing: CustomEvent<{ publicToken: string }>;
  /**
   * The session ended with success: exchange `publicToken` at `POST /link/exchange`. With `multiple-plans`: once
   * per plan linked, with its `endpointId` and whether it `reused` an existing link; the modal stays open.
   */
  success: CustomEvent<{ publicToken: string; endpointId?: string | null; reused?: boolean }>;
  /**
   * The session ended without success (`LINK_SCRIPT_MISSING` when /link.js was not loaded). With `multiple-plans`
   * the modal's one ending: `code` is `null` once a plan was linked.
   */
  exit: CustomEvent<{ code: LinkExitCode | 'LINK_SCRIPT_MISSING' | null }>;
  /** A step of the session, for funnel analytics. */
  event: CustomEvent<{ name: LinkEventName; metadata: Record<string, unknown> }>;
}

export interface FlexpaLinkElement extends HTMLElement {
  /** Opens Link with the element's attributes (call it from a user gesture). */
  open(): void;
  addEventListener<K extends keyof FlexpaLinkElementEventMap>(
    type: K,
    listener: (this: FlexpaLinkElement, ev: FlexpaLinkElementEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'flexpa-link': FlexpaLinkElement;
  }
}
