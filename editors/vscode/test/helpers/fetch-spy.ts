/**
 * Records what goes over the wire. Every call still goes to the real `fetch` and the real
 * server: this only watches.
 */
export interface Exchange {
  method: string;
  url: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  status?: number;
  responseHeaders?: Record<string, string>;
  response?: unknown;
  error?: string;
  done: Promise<void>;
}

export class FetchSpy {
  readonly exchanges: Exchange[] = [];
  private readonly original = globalThis.fetch;

  install(): this {
    const spy = this;
    const original = this.original;
    globalThis.fetch = async function (input: string | URL | Request, init?: RequestInit): Promise<Response> {
      const url = String(input instanceof Request ? input.url : input);
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, key) => (headers[key] = value));
      let finish!: () => void;
      const exchange: Exchange = {
        method: init?.method ?? 'GET',
        url,
        path: new URL(url).pathname,
        headers,
        body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
        done: new Promise((resolve) => (finish = resolve)),
      };
      spy.exchanges.push(exchange);
      try {
        const response = await original(input, init);
        exchange.status = response.status;
        exchange.responseHeaders = {};
        response.headers.forEach((value, key) => (exchange.responseHeaders![key] = value));
        const text = await response.clone().text();
        try {
          exchange.response = text ? JSON.parse(text) : undefined;
        } catch {
          exchange.response = text;
        }
        finish();
        return response;
      } catch (err) {
        exchange.error = (err as Error).name === 'AbortError' ? 'AbortError' : String((err as Error)?.message ?? err);
        finish();
        throw err;
      }
    };
    return this;
  }

  uninstall(): void {
    globalThis.fetch = this.original;
  }

  to(path: string): Exchange[] {
    return this.exchanges.filter((e) => e.path === path);
  }

  clear(): void {
    this.exchanges.length = 0;
  }
}
