/**
 * The operator routes of the dashboard's API, as the page uses them. A 401 (the access token
 * expired under us) refreshes the session once and repeats the request.
 */
import { ApiError, requestJson, type RequestOptions } from './api-client.ts';
import type {
  Activity,
  BulkRedriveBody,
  DeadLetterDetail,
  DeadLetterKind,
  DeadLetterList,
  DiscardBody,
  DiscardOutcome,
  History,
  Overview,
  RedriveOutcome,
} from './api-types.ts';
import type { OperatorSessionKeeper } from './operator-session.ts';

export interface DeadLetterFilter {
  kind?: DeadLetterKind | undefined;
  source?: string | undefined;
  code?: string | undefined;
}

function deadLetterPath(id: string, action?: 'redrive' | 'discard'): string {
  return `/admin/dead-letters/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;
}

export class DashboardApi {
  constructor(readonly session: OperatorSessionKeeper) {}

  async #request<T>(path: string, options: Omit<RequestOptions, 'token'> = {}): Promise<T> {
    try {
      return await requestJson<T>(path, { ...options, token: this.session.accessToken });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      if (!(await this.session.refresh())) throw error;
      return requestJson<T>(path, { ...options, token: this.session.accessToken });
    }
  }

  overview(signal?: AbortSignal): Promise<Overview> {
    return this.#request('/admin/overview', { signal });
  }

  history(minutes: number, signal?: AbortSignal): Promise<History> {
    return this.#request(`/admin/history?minutes=${minutes}`, { signal });
  }

  /** Newest first. (`{ items }`; a bare list is read too.) */
  async activity(signal?: AbortSignal): Promise<Activity[]> {
    const body = await this.#request<unknown>('/admin/activity?limit=100', { signal });
    if (Array.isArray(body)) return body as Activity[];
    const items = typeof body === 'object' && body !== null ? (body as { items?: unknown }).items : undefined;
    return Array.isArray(items) ? (items as Activity[]) : [];
  }

  deadLetters(filter: DeadLetterFilter, signal?: AbortSignal): Promise<DeadLetterList> {
    const query = new URLSearchParams();
    if (filter.kind) query.set('kind', filter.kind);
    if (filter.source) query.set('source', filter.source);
    if (filter.code) query.set('code', filter.code);
    query.set('limit', '500');
    return this.#request(`/admin/dead-letters?${query}`, { signal });
  }

  deadLetter(id: string, signal?: AbortSignal): Promise<DeadLetterDetail> {
    return this.#request(deadLetterPath(id), { signal });
  }

  redrive(id: string): Promise<RedriveOutcome> {
    return this.#request(deadLetterPath(id, 'redrive'), { method: 'POST', body: {} });
  }

  redriveMany(body: BulkRedriveBody): Promise<RedriveOutcome> {
    return this.#request('/admin/dead-letters/redrive', { method: 'POST', body });
  }

  discard(id: string): Promise<DiscardOutcome> {
    const body: DiscardBody = { confirm: id };
    return this.#request(deadLetterPath(id, 'discard'), { method: 'POST', body });
  }
}
