/**
 * WWW-Authenticate challenges (RFC 7235) as registries send them:
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:foo:pull"`
 * or `Basic realm="Registry Realm"`. Only the first challenge we understand is used.
 */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  let i = 0;
  let current: Challenge | undefined;
  const skipWs = () => {
    while (i < text.length && /[\s,]/.test(text[i] ?? '')) i++;
  };
  while (i < text.length) {
    skipWs();
    const tokenMatch = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(text.slice(i));
    if (!tokenMatch) break;
    const token = tokenMatch[0];
    i += token.length;
    while (text[i] === ' ') i++;
    if (text[i] === '=') {
      // A parameter of the current challenge.
      i++;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\') i++;
          value += text[i] ?? '';
          i++;
        }
        i++;
      } else {
        const m = /^[^\s,]*/.exec(text.slice(i));
        value = m?.[0] ?? '';
        i += value.length;
      }
      if (current) current.params[token.toLowerCase()] = value;
      continue;
    }
    const scheme = token.toLowerCase();
    current = scheme === 'basic' || scheme === 'bearer' ? { scheme, params: {} } : undefined;
    if (current) out.push(current);
  }
  return out;
}
