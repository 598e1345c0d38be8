import type { NotificationTemplate } from '@civildiy/common/contracts';

/** A rendered message. */
export interface RenderedMessage {
  subject: string;
  body: string;
}

type Vars = Record<string, string | number | boolean>;

const euros = (cents: unknown) => (typeof cents === 'number' ? `€${(cents / 100).toFixed(2)}` : 'your total');

const templates: Record<NotificationTemplate, (vars: Vars, username: string) => RenderedMessage> = {
  welcome: (_vars, username) => ({
    subject: 'Welcome to CivilDIY',
    body: `Hi ${username},\n\nwelcome to CivilDIY! Share your builds, follow other makers and order kits for your next project.\n\n— The CivilDIY team`,
  }),
  order_confirmed: (vars, username) => ({
    subject: `Your order ${String(vars.orderId ?? '').slice(0, 8)} is confirmed`,
    body: `Hi ${username},\n\nwe received your payment of ${euros(vars.totalCents)} for order ${String(vars.orderId)}. Your kit is being packed.\n\n— The CivilDIY team`,
  }),
  order_rejected: (vars, username) => ({
    subject: `Your order ${String(vars.orderId ?? '').slice(0, 8)} could not be completed`,
    body: `Hi ${username},\n\nwe could not take payment of ${euros(vars.totalCents)} for order ${String(vars.orderId)} (${String(vars.reason ?? 'payment declined')}). Nothing was charged.\n\n— The CivilDIY team`,
  }),
};

/** Renders `template` for a user. Pure, so the same inputs always give the same message. */
export function renderTemplate(template: NotificationTemplate, vars: Vars, username: string): RenderedMessage {
  return templates[template](vars, username);
}
