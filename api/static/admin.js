// Catalyst Signal Hub admin dashboard: plain JavaScript, no build step, no other host.
//
// Log in: the API key goes in a POST body to /api/v1/auth/token and is dropped at
// once; only the JWT it returns is kept, in this closure (never in storage, a URL
// or a log). Everything shown comes from the API or the /ws stream with that JWT.
// Text from the server is only ever set as textContent, never parsed as HTML.
'use strict';

(function () {
  const API = '/api/v1';
  const FEED_MAX = 200;
  const CHANNELS_EVERY_MS = 15000;
  const BADGES = ['pending', 'held', 'sent', 'failed', 'expired', 'dead', 'canceled',
    'active', 'retracted'];

  const state = {
    token: null,
    ws: null,
    welcomed: false,
    subscribing: false,
    wsRetry: 0,
    lastSeq: null,
    filters: {},  // what the next subscribe sends
    accepted: {},  // what the hub last accepted (a refused filter falls back to it)
    timers: { ws: null, expiry: null, channels: null },
    feedRows: new Map(),
  };

  const $ = (id) => document.getElementById(id);

  // ---- small DOM helpers --------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === 'className') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function badge(status) {
    const text = status === undefined || status === null ? '?' : String(status);
    const known = BADGES.includes(text) ? text : 'other';
    return el('span', { className: 'badge badge-' + known, text });
  }

  function label(key) {
    return String(key).replace(/_/g, ' ');
  }

  function fmtTime(iso, withDate) {
    if (!iso) return '';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return withDate ? date.toLocaleString() : date.toLocaleTimeString();
  }

  function fmtNumber(key, value) {
    if (/seconds/.test(key)) {
      return value < 10 ? value.toFixed(2) + ' s' : Math.round(value).toLocaleString() + ' s';
    }
    return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(3);
  }

  function notice(message, kind) {
    const box = $('notice');
    box.textContent = message || '';
    box.dataset.kind = kind || 'info';
    box.hidden = !message;
  }

  function setWsStatus(kind, text) {
    const pill = $('ws-status');
    pill.dataset.state = kind;
    pill.textContent = text || kind;
  }

  // ---- the API --------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailOf(data, fallback) {
    if (data && typeof data.detail === 'string') return data.detail;
    if (data && data.detail !== undefined) return JSON.stringify(data.detail);
    return fallback;
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const init = { method: opts.method || 'GET', headers, cache: 'no-store', credentials: 'omit' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'the hub did not answer (' + err.message + ')');
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = detailOf(data, response.status + ' ' + response.statusText);
      if (response.status === 401 && state.token) {
        logout('Your session ended (' + detail + '); log in again.');
      }
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  // ---- session ------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const input = $('api-key');
    const key = input.value.trim();
    input.value = '';  // the key is not kept anywhere on the page
    if (!key) return;
    const button = $('login-button');
    button.disabled = true;
    notice('');
    try {
      const data = await api(API + '/auth/token', { method: 'POST', body: { api_key: key } });
      start(data.access_token, Number(data.expires_in) || 3600);
    } catch (err) {
      notice('Log in failed: ' + err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  function start(token, expiresIn) {
    state.token = token;
    // setTimeout holds at most 2^31-1 ms; a longer-lived token is refused at use.
    const ms = Math.min(expiresIn * 1000, 2147483647);
    state.timers.expiry = setTimeout(() => logout('Your token expired; log in again.'), ms);
    $('login').hidden = true;
    $('app').hidden = false;
    $('session').hidden = false;
    connect();
    loadChannels();
    loadDead();
    state.timers.channels = setInterval(() => {
      if (!document.hidden) loadChannels();
    }, CHANNELS_EVERY_MS);
  }

  function logout(message) {
    state.token = null;
    clearTimeout(state.timers.ws);
    clearTimeout(state.timers.expiry);
    clearInterval(state.timers.channels);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000);
    state.lastSeq = null;
    state.feedRows.clear();
    $('channels-updated').textContent = '';
    for (const id of ['channels', 'feed', 'search-results', 'trace-signal', 'trace', 'dead']) {
      clear($(id));
    }
    $('trace-table').hidden = true;
    $('retry-result').hidden = true;
    setWsStatus('off', 'offline');
    $('app').hidden = true;
    $('session').hidden = true;
    $('login').hidden = false;
    notice(message || '', message ? 'error' : 'info');
  }

  // ---- the live stream ------------------------------------------------------

  function connect() {
    if (!state.token) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(scheme + '//' + location.host + '/ws');
    state.ws = ws;
    state.welcomed = false;
    setWsStatus('connecting', 'connecting');
    // The token goes in the first message, never in the URL.
    ws.addEventListener('open', () => send(ws, { type: 'auth', token: state.token }));
    ws.addEventListener('message', (event) => onFrame(ws, event.data));
    ws.addEventListener('close', (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!state.token) return;
      if (event.code === 4001) {
        logout('The stream refused the token (expired or revoked); log in again.');
        return;
      }
      const delay = Math.min(30000, 1000 * 2 ** state.wsRetry);
      state.wsRetry += 1;
      setWsStatus('off', 'reconnecting in ' + Math.round(delay / 1000) + ' s');
      state.timers.ws = setTimeout(connect, delay);
    });
  }

  function send(ws, message) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function subscribe(ws) {
    state.subscribing = true;
    // persist: false changes this connection only, never the admin's stored filter.
    send(ws, { type: 'subscribe', filters: state.filters, persist: false });
  }

  function onFrame(ws, raw) {
    if (ws !== state.ws) return;
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      return;
    }
    switch (message.type) {
      case 'welcome':
        state.welcomed = true;
        state.wsRetry = 0;
        subscribe(ws);
        // After a reconnect: what was missed, then live (no gap, no duplicate).
        if (state.lastSeq !== null) send(ws, { type: 'resume', after_seq: state.lastSeq });
        break;
      case 'subscribed':
        state.subscribing = false;
        state.accepted = message.filters || {};
        setWsStatus('live', 'live');
        showFilter(message.filters);
        break;
      case 'heartbeat':
        send(ws, { type: 'pong' });
        break;
      case 'signal':
        addSignal(message.data, false);
        break;
      case 'signal_update':
        addSignal(message.data, true);
        break;
      case 'error':
        if (state.subscribing) {
          state.subscribing = false;
          state.filters = state.accepted;  // the connection keeps it; so will a reconnect
          $('filter-status').textContent = 'Filter refused: ' + message.message;
          setWsStatus('live', 'live');
        } else {
          notice('Stream: ' + message.message, 'error');
        }
        break;
      default:
        break;
    }
  }

  function showFilter(filters) {
    const parts = Object.entries(filters || {}).map(([key, value]) =>
      key + '=' + (Array.isArray(value) ? value.join(',') : String(value)));
    $('filter-status').textContent = 'Filter: ' + (parts.length ? parts.join(' ') : 'everything') +
      ' (this page only; your stored filter is not changed).';
  }

  // "field=value field=value" (the hub's filter text) or a JSON object.
  function parseFilter(text) {
    const source = text.trim();
    if (!source) return {};
    if (source.startsWith('{')) {
      const value = JSON.parse(source);
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        throw new Error('a JSON filter must be an object');
      }
      return value;
    }
    const filters = {};
    for (const token of source.split(/\s+/)) {
      const at = token.indexOf('=');
      if (at <= 0) {
        throw new Error('"' + token + '" is not field=value (e.g. min_confidence=0.7 tickers=AAPL,TSLA)');
      }
      const value = token.slice(at + 1);
      filters[token.slice(0, at)] = value === '' ? null : value;
    }
    return filters;
  }

  function applyFilter(event) {
    event.preventDefault();
    try {
      state.filters = parseFilter($('filter-text').value);
    } catch (err) {
      $('filter-status').textContent = 'Filter not applied: ' + err.message;
      return;
    }
    if (state.ws && state.welcomed) {
      setWsStatus('connecting', 'applying filter');
      subscribe(state.ws);
    } else {
      $('filter-status').textContent = 'Filter saved for this page: it applies when the stream connects.';
    }
  }

  // ---- signals --------------------------------------------------------------

  function signalRow(signal) {
    const headline = signal.headline || '';
    let headlineCell = headline;
    if (signal.url) {
      try {
        const url = new URL(signal.url);
        if (url.protocol === 'https:' || url.protocol === 'http:') {
          headlineCell = el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer',
            text: headline || url.hostname });
        }
      } catch (err) {
        // not a URL: show the headline alone
      }
    }
    const status = el('td', {}, badge(signal.status || 'active'));
    if (signal.revision) status.append(' r' + signal.revision);
    const confidence = typeof signal.confidence === 'number' ? signal.confidence.toFixed(2) : '';
    return el('tr', { dataset: { signalId: signal.signal_id } },
      el('td', { title: signal.timestamp, text: fmtTime(signal.timestamp, false) }),
      el('td', {}, el('strong', { text: signal.ticker })),
      el('td', { text: signal.signal_type }),
      el('td', { text: confidence }),
      el('td', { text: signal.catalyst_type }),
      el('td', { className: 'headline' }, headlineCell),
      status,
      el('td', {}, el('button', { type: 'button', className: 'small trace-button',
        text: 'Trace', title: signal.signal_id, onclick: () => trace(signal.signal_id) })));
  }

  function addSignal(signal, isUpdate) {
    if (!signal || typeof signal.signal_id !== 'string') return;
    if (!isUpdate && typeof signal.seq === 'number' &&
        (state.lastSeq === null || signal.seq > state.lastSeq)) {
      state.lastSeq = signal.seq;
    }
    const feed = $('feed');
    const row = signalRow(signal);
    if (isUpdate) row.classList.add('updated');
    const existing = state.feedRows.get(signal.signal_id);
    if (existing && existing.parentNode === feed) {
      existing.replaceWith(row);
    } else {
      feed.prepend(row);
    }
    state.feedRows.set(signal.signal_id, row);
    while (feed.rows.length > FEED_MAX) {
      const last = feed.rows[feed.rows.length - 1];
      state.feedRows.delete(last.dataset.signalId);
      last.remove();
    }
    $('feed-count').textContent = feed.rows.length + ' signal' + (feed.rows.length === 1 ? '' : 's');
  }

  const SIGNAL_ID = /^[A-Za-z0-9._:-]{1,128}$/;

  async function search(event) {
    event.preventDefault();
    const query = $('search-text').value.trim();
    const status = $('search-status');
    const body = $('search-results');
    if (!query) return;
    status.textContent = 'Searching...';
    const byId = SIGNAL_ID.test(query) && !/^\.+$/.test(query)
      ? api(API + '/signals/' + encodeURIComponent(query)).then(
        (signal) => [signal],
        (err) => (err.status === 404 ? [] : Promise.reject(err)))
      : Promise.resolve([]);
    const params = new URLSearchParams({ ticker: query, limit: '50' });
    const byTicker = api(API + '/signals?' + params).then(
      (list) => (Array.isArray(list) ? list : []),
      (err) => (err.status === 400 || err.status === 422 ? [] : Promise.reject(err)));
    try {
      const [exact, listed] = await Promise.all([byId, byTicker]);
      const seen = new Set();
      const found = [...exact, ...listed].filter((s) => !seen.has(s.signal_id) && seen.add(s.signal_id));
      clear(body);
      for (const signal of found) body.append(signalRow(signal));
      status.textContent = found.length
        ? found.length + ' found'
        : 'Nothing found: no signal with that id, and none for that ticker (ticker results pass your stored filter).';
    } catch (err) {
      status.textContent = 'Search failed: ' + err.message;
    }
  }

  // ---- trace ----------------------------------------------------------------

  function kv(target, entries) {
    clear(target);
    for (const [key, value] of entries) {
      if (value === undefined || value === null || value === '') continue;
      target.append(el('dt', { text: label(key) }),
        el('dd', {}, value instanceof Node ? value : String(value)));
    }
  }

  async function trace(signalId) {
    const status = $('trace-status');
    const table = $('trace-table');
    const body = $('trace');
    status.textContent = 'Loading the trace of ' + signalId + '...';
    $('trace-panel').scrollIntoView({ block: 'start' });
    let data;
    try {
      data = await api(API + '/admin/signals/' + encodeURIComponent(signalId) + '/deliveries');
    } catch (err) {
      status.textContent = 'Trace failed: ' + err.message;
      return;
    }
    const signal = (data && data.signal) || {};
    const deliveries = Array.isArray(data) ? data : (data && data.deliveries) || [];
    kv($('trace-signal'), [
      ['signal_id', signal.signal_id || signalId], ['ticker', signal.ticker],
      ['signal_type', signal.signal_type], ['confidence', signal.confidence],
      ['catalyst_type', signal.catalyst_type], ['status', signal.status ? badge(signal.status) : null],
      ['revision', signal.revision], ['seq', signal.seq],
      ['timestamp', fmtTime(signal.timestamp, true)], ['headline', signal.headline],
      ['deliveries', data && data.summary ? valueNode('summary', data.summary) : null],
    ]);
    clear(body);
    for (const d of deliveries) {
      body.append(el('tr', { dataset: { deliveryId: d.id } },
        el('td', { text: d.id }), el('td', { text: d.kind }), el('td', { text: d.revision }),
        el('td', { text: d.platform || d.channel }), el('td', { className: 'mono', text: d.destination }),
        el('td', {}, badge(d.status)), el('td', { text: d.attempts }),
        el('td', { className: 'error-text', text: d.last_error || '' }),
        el('td', { title: d.created_at, text: fmtTime(d.created_at, true) }),
        el('td', { title: d.sent_at || d.ended_at, text: fmtTime(d.sent_at || d.ended_at, true) })));
    }
    table.hidden = deliveries.length === 0;
    status.textContent = deliveries.length
      ? deliveries.length + ' deliver' + (deliveries.length === 1 ? 'y' : 'ies')
      : 'No chat deliveries for this signal (no subscription matched it).';
  }

  // ---- channels -------------------------------------------------------------

  function valueNode(key, value) {
    if (value === null || value === undefined) return el('span', { className: 'muted', text: '-' });
    if (typeof value === 'number') return el('span', { text: fmtNumber(key, value) });
    if (typeof value === 'boolean') return el('span', { text: value ? 'yes' : 'no' });
    if (Array.isArray(value)) {
      if (!value.length) return el('span', { className: 'muted', text: 'none' });
      const list = el('ul', { className: 'plain warn' });
      for (const item of value) {
        const text = item && typeof item === 'object'
          ? Object.entries(item).map(([k, v]) =>
            (typeof v === 'number' ? label(k) + ' ' + fmtNumber(k, v) : String(v))).join(', ')
          : String(item);
        list.append(el('li', { text }));
      }
      return list;
    }
    if (typeof value === 'object') {
      const grid = el('dl', { className: 'counts' });
      for (const [k, v] of Object.entries(value)) {
        const bad = (k === 'dead' || k === 'failed') && typeof v === 'number' && v > 0;
        grid.append(el('div', { className: v ? (bad ? 'warn' : '') : 'muted' },
          el('dt', { text: label(k) }), el('dd', {}, valueNode(k, v))));
      }
      return grid;
    }
    return el('span', { text: String(value) });
  }

  function channelCard(entry) {
    const name = String(entry.channel || entry.name || '?');
    const card = el('article', { className: 'card', dataset: { channel: name } },
      el('h3', { text: name }));
    const list = el('dl', { className: 'kv' });
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'channel') continue;
      // A nested object (counts by status, latency) gets the card's whole width.
      const span = value !== null && typeof value === 'object' && !Array.isArray(value);
      const dd = el('dd', { className: span ? 'span' : null, dataset: { field: key } },
        valueNode(key, value));
      if (key === 'rate_limited' && typeof value === 'number' && value > 0) dd.classList.add('warn');
      list.append(el('dt', { className: span ? 'span' : null, text: label(key) }), dd);
    }
    card.append(list);
    return card;
  }

  async function loadChannels() {
    const box = $('channels');
    let data;
    try {
      data = await api(API + '/admin/channels');
    } catch (err) {
      if (!state.token) return;
      clear(box);
      box.append(el('p', { className: 'error-text', text: 'Channels: ' + err.message }));
      return;
    }
    let entries = Array.isArray(data) ? data : (data && data.channels);
    if (!Array.isArray(entries)) {  // keyed by channel name
      entries = Object.entries(data || {}).map(([channel, v]) => ({ channel, ...v }));
    }
    clear(box);
    for (const entry of entries) {
      if (entry && typeof entry === 'object') box.append(channelCard(entry));
    }
    const at = data && !Array.isArray(data) && data.generated_at;
    $('channels-updated').textContent = 'as of ' + fmtTime(at || new Date().toISOString(), false);
  }

  // ---- dead letters ---------------------------------------------------------

  async function loadDead(event) {
    if (event) event.preventDefault();
    const box = $('dead');
    const params = new URLSearchParams();
    const channel = $('dead-channel').value.trim();
    if (channel) params.set('channel', channel);
    params.set('limit', String(Math.max(1, Number($('dead-limit').value) || 50)));
    let data;
    try {
      data = await api(API + '/admin/deliveries/dead?' + params);
    } catch (err) {
      if (!state.token) return;
      clear(box);
      box.append(el('p', { className: 'error-text', text: 'Dead letters: ' + err.message }));
      return;
    }
    const rows = Array.isArray(data) ? data : (data && (data.deliveries || data.items)) || [];
    const groups = new Map();
    for (const d of rows) {
      const name = String(d.platform || d.channel || 'unknown');
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(d);
    }
    clear(box);
    if (!groups.size) box.append(el('p', { className: 'muted', text: 'No dead deliveries.' }));
    for (const [name, items] of groups) box.append(deadGroup(name, items));
  }

  function deadGroup(name, items) {
    const body = el('tbody');
    for (const d of items) {
      const signal = d.signal_id || (d.signal && d.signal.signal_id) || '';
      const ticker = d.ticker || (d.signal && d.signal.ticker) || '';
      body.append(el('tr', { dataset: { deliveryId: d.id } },
        el('td', { text: d.id }),
        el('td', {}, ticker ? el('strong', { text: ticker + ' ' }) : null, signal
          ? el('button', { type: 'button', className: 'link', text: signal, onclick: () => trace(signal) })
          : String(d.signal_seq || '')),
        el('td', { className: 'mono', text: d.destination }),
        el('td', { text: d.attempts }),
        el('td', { className: 'error-text', text: d.last_error || '' }),
        el('td', { title: d.created_at, text: fmtTime(d.created_at, true) }),
        el('td', {}, el('button', { type: 'button', className: 'small retry-button', text: 'Retry',
          onclick: (e) => retry({ delivery_ids: [d.id] }, e.currentTarget) }))));
    }
    const retryAll = el('button', { type: 'button', className: 'small retry-all',
      dataset: { channel: name }, text: 'Retry all ' + name,
      onclick: (e) => {
        // eslint-disable-next-line no-alert
        if (window.confirm('Retry every dead ' + name + ' delivery?')) {
          retry({ channel: name, all: true }, e.currentTarget);
        }
      } });
    return el('div', { className: 'dead-group', dataset: { channel: name } },
      el('div', { className: 'panel-head' },
        el('h3', { text: name + ' (' + items.length + ')' }), retryAll),
      el('div', { className: 'scroll' }, el('table', {},
        el('thead', {}, el('tr', {}, ...['Id', 'Signal', 'Destination', 'Attempts', 'Last error',
          'Created', ''].map((h) => el('th', { text: h })))),
        body)));
  }

  async function retry(body, button) {
    const box = $('retry-result');
    if (button) button.disabled = true;
    try {
      const result = await api(API + '/admin/deliveries/retry', { method: 'POST', body });
      const skipped = Array.isArray(result && result.skipped) ? result.skipped : [];
      let text = 'Retried ' + Number(result && result.retried) + '.';
      if (skipped.length) {
        text += ' Skipped ' + skipped.length + ': ' +
          skipped.map((s) => '#' + s.id + ' (' + s.reason + ')').join(', ') + '.';
      }
      box.textContent = text;
      box.dataset.kind = 'ok';
    } catch (err) {
      box.textContent = 'Retry failed: ' + err.message;
      box.dataset.kind = 'error';
    } finally {
      if (button) button.disabled = false;
    }
    if (!state.token) return;  // logged out meanwhile (a 401)
    box.hidden = false;
    loadDead();
    loadChannels();
  }

  // ---- wiring ---------------------------------------------------------------

  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout(''));
  $('filter-form').addEventListener('submit', applyFilter);
  $('search-form').addEventListener('submit', search);
  $('dead-form').addEventListener('submit', loadDead);
  $('channels-refresh').addEventListener('click', () => loadChannels());
}());
