// The admin console: a small single-page app over the JSON API, with no library. The token (or
// API key) lives in sessionStorage only and goes out as `Authorization`; every number the API
// sends is shown as the digits it sent (JSON numbers are read as their source text), so money
// stays exact. No inline script or style: the Content-Security-Policy forbids both.
'use strict';

(() => {
  const KEY = 'referral-api.token';
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const statusBox = document.getElementById('status');

  const EVENT_TYPES = ['credit.signup', 'credit.held', 'credit.in_review', 'credit.acquired',
    'credit.cancelled', 'credit.capped', 'credit.rejected', 'credit.reversed',
    'referral.redeemed', 'referrer.created'];
  const REASONS = ['fraud', 'self_referral', 'duplicate', 'refund', 'terms_violation', 'other'];
  const ACTIONS = ['program.create', 'program.update', 'program.delete', 'code.rules',
    'credit.approve', 'credit.reject', 'credit.reverse', 'callback.retry', 'webhook.create',
    'webhook.update', 'webhook.delete', 'webhook.rotate', 'webhook.recover', 'api_key.create',
    'api_key.revoke'];
  const CREDIT_STATES = ['in_review', 'acquired', 'held', 'pending', 'capped', 'rejected',
    'reversed', 'cancelled'];

  // ---- the DOM, built by code --------------------------------------------------------------

  /** An element with attributes (`on*` functions become listeners) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else if (name === 'text') {
        el.textContent = value;
      } else if (value === true) {
        el.setAttribute(name, '');
      } else {
        el.setAttribute(name, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  let uid = 0;
  /** A labelled control: `<label>Text <input …></label>`. */
  function field(text, control) {
    if (!control.id) control.id = `f${++uid}`;
    return h('label', { for: control.id }, text, control);
  }

  function table(headers, rows, numeric = []) {
    return h('div', { class: 'table-wrap' },
      h('table', {},
        h('thead', {}, h('tr', {}, headers.map((name, i) =>
          h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, name)))),
        h('tbody', {}, rows.length ? rows.map((cells) => h('tr', {}, cells.map((cell, i) =>
          h('td', { class: numeric.includes(i) ? 'num' : null }, cell))))
          : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'Nothing here.')))));
  }

  /** A place for an action's error sentence, announced to screen readers. */
  function alertBox() {
    return h('p', { role: 'alert', class: 'error' });
  }

  function show(...children) {
    main.replaceChildren(...children);
    main.focus();
  }

  function say(text) {
    statusBox.textContent = text;
    if (text) setTimeout(() => { if (statusBox.textContent === text) statusBox.textContent = ''; }, 4000);
  }

  const money = (value) => (value === null || value === undefined ? '—' : String(value));
  const text = (value) => (value === null || value === undefined || value === '' ? '—' : String(value));

  // ---- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, sentence) {
      super(sentence);
      this.status = status;
    }
  }

  /** JSON with every number as the text it was sent as. */
  function parseExact(body) {
    return JSON.parse(body, (key, value, context) => {
      if (typeof value === 'number') {
        return context && typeof context.source === 'string' ? context.source : String(value);
      }
      return value;
    });
  }

  const token = () => sessionStorage.getItem(KEY);

  async function request(method, path, body) {
    const headers = { Authorization: `Bearer ${token() || ''}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = toJson(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'The service did not answer. Check the connection and try again.');
    }
    if (response.status === 401 && path !== '/admin/audit?limit=1') {
      signOut('Your session ended: the token expired or the key was revoked. Sign in again.');
      throw new ApiError(401, 'Signed out.');
    }
    return response;
  }

  async function api(method, path, body) {
    const response = await request(method, path, body);
    const raw = await response.text();
    const data = raw ? parseExact(raw) : null;
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  /** Runs an action from a button: busy while it runs, its error in `alert`. */
  async function act(button, alert, work) {
    if (alert) alert.textContent = '';
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = 'Working…';
    try {
      await work();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      if (alert) alert.textContent = err.message;
      else say(err.message);
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
    }
  }

  /** A form whose submit runs `work` with its submit button busy. */
  function form(attrs, alert, children, work) {
    const el = h('form', attrs, children);
    el.addEventListener('submit', (event) => {
      event.preventDefault();
      const button = el.querySelector('button[type="submit"]');
      act(button, alert, () => work(el));
    });
    return el;
  }

  async function loading(title, work) {
    show(h('h2', {}, title), h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    try {
      await work();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      show(h('h2', {}, title), h('p', { role: 'alert', class: 'error' }, err.message));
    }
  }

  // ---- signing in and out ------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    signIn(message);
  }

  function signIn(message) {
    nav.hidden = true;
    const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true });
    const alert = alertBox();
    if (message) alert.textContent = message;
    show(h('section', { class: 'signin' },
      h('h2', {}, 'Sign in'),
      h('p', { class: 'muted' }, 'An admin token (referral-api token --role admin) or an admin API key (rk_…). It is kept for this browser tab only.'),
      alert,
      form({}, alert, [field('Admin token or API key', input),
        h('button', { type: 'submit' }, 'Sign in')], async () => {
        sessionStorage.setItem(KEY, input.value.trim());
        const response = await request('GET', '/admin/audit?limit=1');
        if (!response.ok) {
          sessionStorage.removeItem(KEY);
          throw new Error(response.status === 401
            ? 'That token or key was refused: it is expired, revoked, or not an admin\'s.'
            : `The service answered ${response.status}. Try again.`);
        }
        if (!location.hash || location.hash === '#/' || location.hash === '#/signin') {
          location.hash = '#/programs';
        } else {
          route();
        }
      })));
    input.focus();
  }

  // ---- programs ----------------------------------------------------------------------------

  const PROGRAM_FIELDS = [
    ['name', 'Name', 'text'],
    ['credit_value', 'Credit value (signup)', 'money'],
    ['target_value', 'Target value', 'money'],
    ['hold_days', 'Hold days (0–365)', 'int'],
    ['max_credits_per_indicator', 'Credit cap per indicator (blank: none)', 'int-or-null'],
    ['clawback_days', 'Clawback days (0–365)', 'int'],
    ['review', 'Review', 'review'],
    ['review_velocity', 'Velocity flag: registrations an hour (blank: off)', 'int-or-null'],
  ];

  /** The program form's controls, filled from `program` when editing. */
  function programControls(program) {
    return PROGRAM_FIELDS.map(([name, label, kind]) => {
      const value = program ? program[name] : undefined;
      let control;
      if (kind === 'review') {
        control = h('select', { name }, ['none', 'flagged', 'all'].map((mode) =>
          h('option', { value: mode, selected: (value || 'none') === mode }, mode)));
      } else {
        control = h('input', {
          name,
          type: 'text',
          inputmode: kind === 'text' ? null : 'decimal',
          value: value === null || value === undefined ? '' : String(value),
          required: kind === 'text' && !program,
        });
      }
      return field(label, control);
    });
  }

  /** The JSON body of a program form: money and counts as exact JSON numbers. */
  function programBody(el, editing) {
    const body = {};
    for (const [name, , kind] of PROGRAM_FIELDS) {
      const raw = el.elements[name].value.trim();
      if (kind === 'text' || kind === 'review') {
        if (raw !== '' || !editing) body[name] = raw;
      } else if (kind === 'int-or-null') {
        body[name] = raw === '' ? null : rawNumber(raw);
      } else if (raw !== '') {
        body[name] = rawNumber(raw);
      }
    }
    return body;
  }

  /** A number typed by the user, sent as the API's sentence would judge it (text that is not
   *  a number goes as text, for the API to name the field). */
  function rawNumber(raw) {
    return /^-?\d+(\.\d+)?$/.test(raw) ? new RawJson(raw) : raw;
  }

  /** A JSON number kept as typed (no float rounding on the way out). */
  class RawJson {
    constructor(raw) { this.raw = raw; }
    toJSON() { return `\u0000${this.raw}\u0000`; }
  }

  /** JSON text of a body: a RawJson is written as a marked string, then unmarked. */
  function toJson(body) {
    return JSON.stringify(body).replace(/"\\u0000(-?\d+(?:\.\d+)?)\\u0000"/g, '$1');
  }

  async function programs() {
    await loading('Programs', async () => {
      const list = await api('GET', '/program/');
      const figures = await Promise.all(list.map((p) => api('GET', `/program/${p.id}/stats/`)));
      const alert = alertBox();
      const rows = list.map((p, i) => {
        const f = figures[i];
        return [h('a', { href: `#/programs/${p.id}` }, p.name), money(p.credit_value),
          money(p.target_value), text(f.indicated_users), text(f.credits.in_review),
          text(f.credits.acquired), text(f.credits.reversed)];
      });
      show(h('h2', {}, 'Programs'),
        table(['Program', 'Credit value', 'Target value', 'Indicated users', 'In review',
          'Acquired', 'Reversed'], rows, [1, 2, 3, 4, 5, 6]),
        h('h3', {}, 'New program'), alert,
        form({ class: 'fields', 'aria-label': 'New program' }, alert,
          [...programControls(null), h('div', { class: 'actions' },
            h('button', { type: 'submit' }, 'Create program'))],
          async (el) => {
            const made = await api('POST', '/program/', programBody(el, false));
            say(`Program ${made.name} created.`);
            location.hash = `#/programs/${made.id}`;
          }));
    });
  }

  /** Bars of each day's registrations, acquisitions and reversals, as SVG. */
  function chart(days) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    const width = days.length * 12;
    const height = 100;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'Registrations, acquisitions and reversals per day, last 30 days');
    const peak = Math.max(1, ...days.flatMap((d) =>
      [Number(d.registrations), Number(d.acquired), Number(d.reversed)]));
    days.forEach((day, i) => {
      ['registrations', 'acquired', 'reversed'].forEach((kind, k) => {
        const value = Number(day[kind]);
        const bar = document.createElementNS(ns, 'rect');
        const barHeight = (value / peak) * (height - 4);
        bar.setAttribute('x', String(i * 12 + k * 3.5 + 1));
        bar.setAttribute('y', String(height - barHeight));
        bar.setAttribute('width', '3');
        bar.setAttribute('height', String(barHeight));
        bar.setAttribute('class', kind);
        const title = document.createElementNS(ns, 'title');
        title.textContent = `${day.date}: ${value} ${kind}`;
        bar.append(title);
        svg.append(bar);
      });
    });
    return svg;
  }

  async function program(id) {
    await loading('Program', async () => {
      const [p, f, daily] = await Promise.all([
        api('GET', `/program/${id}/`),
        api('GET', `/program/${id}/stats/`),
        api('GET', `/program/${id}/stats/daily?days=30`),
      ]);
      const alert = alertBox();
      const deleteAlert = alertBox();
      const del = h('button', { type: 'button', class: 'danger' }, 'Delete program');
      let armed = false;
      del.addEventListener('click', () => {
        if (!armed) {
          armed = true;
          del.textContent = 'Press again to delete';
          return;
        }
        act(del, deleteAlert, async () => {
          await api('DELETE', `/program/${id}/`);
          say(`Program ${p.name} deleted.`);
          location.hash = '#/programs';
        });
      });
      const c = f.credits;
      show(h('h2', {}, p.name),
        h('p', { class: 'muted' }, `Program ${p.id}`),
        table(['Users', 'Indicated', 'Pending', 'Held', 'In review', 'Acquired', 'Capped',
          'Rejected', 'Reversed', 'Acquired total', 'Reversed total'],
        [[text(f.users), text(f.indicated_users), text(c.pending), text(c.held),
          text(c.in_review), text(c.acquired), text(c.capped), text(c.rejected), text(c.reversed),
          money(f.acquired_credit_total), money(f.reversed_credit_total)]],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        h('h3', {}, 'Activity, last 30 days'),
        h('div', { class: 'legend' }, h('span', { class: 'registrations' }, 'Registrations'),
          h('span', { class: 'acquired' }, 'Acquired'), h('span', { class: 'reversed' }, 'Reversed')),
        chart(daily.days),
        h('details', {}, h('summary', {}, 'Activity as a table'),
          table(['Day', 'Registrations', 'Acquired', 'Reversed', 'Acquired total', 'Reversed total'],
            daily.days.map((d) => [d.date, text(d.registrations), text(d.acquired),
              text(d.reversed), money(d.acquired_total), money(d.reversed_total)]),
            [1, 2, 3, 4, 5])),
        h('h3', {}, 'Edit'), alert,
        form({ class: 'fields', 'aria-label': 'Edit program' }, alert,
          [...programControls(p), h('div', { class: 'actions' },
            h('button', { type: 'submit' }, 'Save changes'))],
          async (el) => {
            await api('PUT', `/program/${id}/`, programBody(el, true));
            say('Saved.');
            await program(id);
          }),
        h('h3', {}, 'Delete'), deleteAlert, del);
    });
  }

  // ---- review queue ------------------------------------------------------------------------

  function reasonSelect(label) {
    return field(label, h('select', { name: 'reason' },
      h('option', { value: '' }, 'Choose a reason'),
      REASONS.map((r) => h('option', { value: r }, r.replace('_', ' ')))));
  }

  async function review() {
    const status = new URLSearchParams(location.hash.split('?')[1] || '').get('status') || 'in_review';
    await loading('Review queue', async () => {
      const page = await api('GET', `/admin/credits?status=${encodeURIComponent(status)}&limit=100`);
      const alert = alertBox();
      const filter = h('select', { name: 'status' }, CREDIT_STATES.map((s) =>
        h('option', { value: s, selected: s === status }, s.replace('_', ' '))));
      filter.addEventListener('change', () => { location.hash = `#/review?status=${filter.value}`; });
      const boxes = [];
      const rows = page.credits.map((credit) => {
        const hash = credit.user_indicated;
        const box = h('input', { type: 'checkbox', value: hash });
        boxes.push(box);
        const rowAlert = alertBox();
        const note = h('input', { type: 'text', name: 'note', maxlength: 500 });
        const reason = reasonSelect(`Reason for ${hash}`);
        const decide = (action, needsReason) => {
          const button = h('button', { type: 'button', class: action === 'approve' ? null : 'secondary' },
            `${action[0].toUpperCase()}${action.slice(1)} ${hash}`);
          button.addEventListener('click', () => act(button, rowAlert, async () => {
            const body = { note: note.value.trim() || undefined };
            if (needsReason) body.reason = reason.querySelector('select').value || undefined;
            await api('POST', `/admin/credits/${encodeURIComponent(hash)}/${action}`, body);
            say(`${hash}: ${action} done.`);
            await review();
          }));
          return button;
        };
        return [
          field(`Select ${hash}`, box),
          h('a', { href: `#/lookup?hash=${encodeURIComponent(hash)}` }, hash),
          text(credit.user_indicator), text(credit.status), money(credit.amount),
          credit.flag_reasons.length
            ? h('ul', {}, credit.flag_reasons.map((f) => h('li', {}, f.reason)))
            : '—',
          h('div', {}, h('div', { class: 'actions' }, reason, field(`Note for ${hash}`, note)),
            h('div', { class: 'actions' }, decide('approve', false), decide('reject', true),
              decide('reverse', true)), rowAlert),
        ];
      });
      const bulk = h('button', { type: 'button' }, 'Approve selected');
      bulk.addEventListener('click', () => act(bulk, alert, async () => {
        const hashes = boxes.filter((b) => b.checked).map((b) => b.value);
        if (!hashes.length) throw new Error('Select at least one credit.');
        const result = await api('POST', '/admin/credits/approve', { user_hashes: hashes });
        const failed = result.results.filter((r) => r.status !== '200');
        say(`${hashes.length - failed.length} approved.`);
        await review();
        if (failed.length) {
          say(failed.map((r) => `${r.user_hash}: ${r.error}`).join('; '));
        }
      }));
      show(h('h2', {}, 'Review queue'),
        h('div', { class: 'actions' }, field('Credits in state', filter)),
        alert,
        table(['', 'Indicated user', 'Indicator', 'State', 'Amount', 'Flags', 'Decision'], rows, [4]),
        h('div', { class: 'actions' }, bulk));
    });
  }

  // ---- look-up -----------------------------------------------------------------------------

  async function lookup() {
    const hash = new URLSearchParams(location.hash.split('?')[1] || '').get('hash') || '';
    const input = h('input', { type: 'text', name: 'hash', value: hash, required: true });
    const alert = alertBox();
    const search = form({ class: 'inline', role: 'search' }, alert,
      [field('User hash', input), h('button', { type: 'submit' }, 'Look up')], async () => {
        location.hash = `#/lookup?hash=${encodeURIComponent(input.value.trim())}`;
      });
    if (!hash) {
      show(h('h2', {}, 'Look-up'), alert, search);
      return;
    }
    await loading('Look-up', async () => {
      const path = encodeURIComponent(hash);
      const statement = await api('GET', `/statement/${path}/`);
      const indicated = await api('GET', `/statement/${path}/indicated/?limit=100`);
      let credit = null;
      try {
        credit = await api('GET', `/admin/credits/${path}`);
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 404) throw err;
      }
      show(h('h2', {}, 'Look-up'), alert, search,
        h('h3', {}, `Statement of ${hash}`),
        table(['Potential', 'Held', 'In review', 'Acquired', 'Indicated users'],
          [[money(statement.potencial_credit), money(statement.held_credit),
            money(statement.in_review_credit), money(statement.acquired_credit),
            text(statement.indicated_users)]], [0, 1, 2, 3, 4]),
        h('h3', {}, 'Indicated users'),
        table(['User', 'Registered', 'Paid', 'Target', 'Credit', 'Amount', 'Flags', 'Release', 'Acquired'],
          indicated.indicated.map((u) => [
            h('a', { href: `#/lookup?hash=${encodeURIComponent(u.user_hash)}` }, u.user_hash),
            text(u.registered_at), money(u.total_amount_paid), money(u.target_value),
            text(u.credit_status), money(u.credit_amount), text(u.flags.join(', ')),
            text(u.release_at), text(u.acquired_at)]), [2, 3, 5]),
        h('h3', {}, `Credit of ${hash}`),
        credit
          ? h('div', {}, table(['State', 'Amount', 'Flags', 'Decided by', 'Reason', 'Note'],
            [[text(credit.status), money(credit.amount),
              text(credit.flag_reasons.map((f) => f.reason).join(' ')), text(credit.decided_by),
              text(credit.reason), text(credit.note)]], [1]),
          h('h3', {}, 'History'),
          table(['At', 'Operation', 'Amount', 'By', 'Reason', 'Note'],
            credit.history.map((e) => [text(e.created_at), text(e.operation), money(e.amount),
              text(e.decided_by), text(e.reason), text(e.note)]), [2]))
          : h('p', { class: 'muted' }, 'This user has no credit as an indicated user.'));
    });
  }

  // ---- deliveries --------------------------------------------------------------------------

  function secretBox(title, secret) {
    return h('div', { class: 'card', role: 'alert' }, h('strong', {}, title),
      h('p', {}, 'Copy it now: it is not shown again.'), h('p', { class: 'secret' }, secret));
  }

  async function deliveries(shown) {
    await loading('Deliveries', async () => {
      const [failed, hooks] = await Promise.all([
        api('GET', '/admin/callbacks?status=failed&limit=100'),
        api('GET', '/admin/webhooks'),
      ]);
      const alert = alertBox();
      const callbackRows = failed.callbacks.map((c) => {
        const retry = h('button', { type: 'button' }, `Retry ${c.id}`);
        retry.addEventListener('click', () => act(retry, alert, async () => {
          await api('POST', `/admin/callbacks/${c.id}/retry`);
          say(`Callback ${c.id} queued again.`);
          await deliveries();
        }));
        return [text(c.event_type), text(c.user_hash), money(c.amount), text(c.attempts),
          text(c.last_error), retry];
      });
      const hookAlert = alertBox();
      const url = h('input', { type: 'url', name: 'url', required: true });
      const description = h('input', { type: 'text', name: 'description', maxlength: 500 });
      const all = h('input', { type: 'checkbox', name: 'all', value: '*', checked: true });
      const types = EVENT_TYPES.map((t) => h('input', { type: 'checkbox', name: 'types', value: t }));
      const hookRows = hooks.webhooks.map((w) => [
        h('a', { href: `#/webhooks/${w.id}` }, w.url), text(w.event_types.join(', ')),
        w.enabled ? 'on' : `off (${text(w.disabled_reason)})`, text(w.description)]);
      show(h('h2', {}, 'Deliveries'), shown || '',
        h('h3', {}, 'Billing callbacks that failed'), alert,
        table(['Type', 'User', 'Amount', 'Attempts', 'Last error', ''], callbackRows, [2, 3]),
        h('h3', {}, 'Webhook endpoints'),
        table(['URL', 'Event types', 'State', 'Description'], hookRows),
        h('h3', {}, 'New endpoint'), hookAlert,
        form({ class: 'fields', 'aria-label': 'New webhook endpoint' }, hookAlert, [
          field('Endpoint URL', url), field('Description', description),
          h('fieldset', {}, h('legend', {}, 'Event types'), field('Every type', all),
            types.map((box) => field(box.value, box))),
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create endpoint'))],
        async () => {
          const chosen = all.checked ? ['*'] : types.filter((b) => b.checked).map((b) => b.value);
          const made = await api('POST', '/admin/webhooks',
            { url: url.value.trim(), event_types: chosen, description: description.value });
          await deliveries(secretBox(`Secret of ${made.url}`, made.secret));
        }));
    });
  }

  async function webhook(id, shown) {
    const status = new URLSearchParams(location.hash.split('?')[1] || '').get('status') || '';
    await loading('Webhook endpoint', async () => {
      const w = await api('GET', `/admin/webhooks/${id}`);
      const list = await api('GET', `/admin/webhooks/${id}/deliveries?limit=100${status ? `&status=${status}` : ''}`);
      const alert = alertBox();
      const button = (label, work, cls) => {
        const b = h('button', { type: 'button', class: cls || null }, label);
        b.addEventListener('click', () => act(b, alert, work));
        return b;
      };
      const url = h('input', { type: 'url', name: 'url', value: w.url, required: true });
      const description = h('input', { type: 'text', name: 'description', value: w.description });
      const types = h('input', { type: 'text', name: 'event_types', value: w.event_types.join(', ') });
      const since = h('input', { type: 'datetime-local', name: 'since', required: true });
      const filter = h('select', { name: 'status' }, ['', 'pending', 'delivered', 'failed'].map((s) =>
        h('option', { value: s, selected: s === status }, s || 'every state')));
      filter.addEventListener('change', () => { location.hash = `#/webhooks/${id}?status=${filter.value}`; });
      show(h('h2', {}, w.url), shown || '',
        h('p', {}, w.enabled ? 'Receiving deliveries.' : `Switched off (${text(w.disabled_reason)}); its deliveries wait.`),
        alert,
        h('div', { class: 'actions' },
          button(w.enabled ? 'Switch off' : 'Switch on', async () => {
            await api('PATCH', `/admin/webhooks/${id}`, { enabled: !w.enabled });
            await webhook(id);
          }, 'secondary'),
          button('Send a test event', async () => {
            const r = await api('POST', `/admin/webhooks/${id}/test`);
            say(r.status ? `The endpoint answered ${r.status} in ${r.duration_ms} ms.` : `No answer: ${r.error}`);
          }, 'secondary'),
          button('Rotate secret', async () => {
            const r = await api('POST', `/admin/webhooks/${id}/rotate-secret`);
            await webhook(id, secretBox('New secret', r.secret));
          }, 'secondary'),
          button('Delete endpoint', async () => {
            await api('DELETE', `/admin/webhooks/${id}`);
            location.hash = '#/deliveries';
          }, 'danger')),
        h('h3', {}, 'Recover failed deliveries'),
        form({ class: 'inline', 'aria-label': 'Recover failed deliveries' }, alert,
          [field('Failed since', since), h('button', { type: 'submit' }, 'Recover')], async () => {
            const at = new Date(since.value);
            if (Number.isNaN(at.getTime())) throw new Error('Choose a date and time.');
            const r = await api('POST', `/admin/webhooks/${id}/recover`, { since: at.toISOString() });
            say(`${r.queued} queued again.`);
            await webhook(id);
          }),
        h('h3', {}, 'Edit'),
        form({ class: 'fields', 'aria-label': 'Edit webhook endpoint' }, alert, [
          field('Endpoint URL', url), field('Description', description),
          field('Event types (comma-separated, or *)', types),
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save changes'))],
        async () => {
          await api('PATCH', `/admin/webhooks/${id}`, {
            url: url.value.trim(),
            description: description.value,
            event_types: types.value.split(',').map((t) => t.trim()).filter(Boolean),
          });
          say('Saved.');
          await webhook(id);
        }),
        h('h3', {}, 'Deliveries'), field('Deliveries in state', filter),
        table(['Event', 'Type', 'State', 'Attempts', 'Last status', 'Last error', 'Next attempt'],
          list.deliveries.map((d) => [text(d.event_id), text(d.event_type), text(d.status),
            text(d.attempts), text(d.last_status), text(d.last_error), text(d.next_attempt_at)]),
          [3, 4]));
    });
  }

  // ---- referral codes ----------------------------------------------------------------------

  async function codes() {
    const params = new URLSearchParams(location.hash.split('?')[1] || '');
    const code = params.get('code') || '';
    const email = params.get('email') || '';
    const alert = alertBox();
    const codeInput = h('input', { type: 'text', name: 'code', value: code });
    const emailInput = h('input', { type: 'email', name: 'email', value: email });
    const search = form({ class: 'inline', role: 'search' }, alert, [
      field('Referral code', codeInput), field('or e-mail', emailInput),
      h('button', { type: 'submit' }, 'Find')], async () => {
      const q = codeInput.value.trim()
        ? `code=${encodeURIComponent(codeInput.value.trim())}`
        : `email=${encodeURIComponent(emailInput.value.trim())}`;
      location.hash = `#/codes?${q}`;
    });
    if (!code && !email) {
      show(h('h2', {}, 'Referral codes'), alert, search);
      return;
    }
    await loading('Referral codes', async () => {
      let referrer;
      if (code) {
        referrer = await api('GET', `/api/referrer?referrerCode=${encodeURIComponent(code)}`);
      } else {
        const encoded = btoa(unescape(encodeURIComponent(email)));
        const found = await api('GET', `/api/referrer/${encodeURIComponent(encoded)}/referral-code`);
        referrer = await api('GET', `/api/referrer?referrerCode=${encodeURIComponent(found.referralCode)}`);
      }
      const rulesAlert = alertBox();
      const limit = h('input', { type: 'text', inputmode: 'numeric', name: 'maxRedemptions',
        value: referrer.maxRedemptions === null || referrer.maxRedemptions === undefined ? '' : referrer.maxRedemptions });
      const expires = h('input', { type: 'datetime-local', name: 'expiresAt',
        value: referrer.expiresAt ? referrer.expiresAt.slice(0, 16) : '' });
      const active = h('input', { type: 'checkbox', name: 'active', checked: referrer.active !== false });
      show(h('h2', {}, 'Referral codes'), alert, search,
        h('h3', {}, referrer.referralCode),
        table(['E-mail', 'Name', 'Redemptions', 'Limit', 'Expires', 'Active'],
          [[text(referrer.email), `${text(referrer.firstName)} ${referrer.lastName || ''}`,
            text(referrer.redemptions), text(referrer.maxRedemptions), text(referrer.expiresAt),
            referrer.active === false ? 'no' : 'yes']], [2, 3]),
        h('h3', {}, 'Rules'), rulesAlert,
        form({ class: 'fields', 'aria-label': 'Code rules' }, rulesAlert, [
          field('Redemption limit (blank: none)', limit), field('Expires at (UTC; blank: never)', expires),
          field('Code switched on', active),
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save rules'))],
        async () => {
          const raw = limit.value.trim();
          await api('PATCH', `/api/referrer/${encodeURIComponent(referrer.referralCode)}`, {
            maxRedemptions: raw === '' ? null : rawNumber(raw),
            expiresAt: expires.value ? `${expires.value}:00Z` : null,
            active: active.checked,
          });
          say('Rules saved.');
          await codes();
        }));
    });
  }

  // ---- audit log and exports ---------------------------------------------------------------

  async function download(button, alert, path, name) {
    await act(button, alert, async () => {
      const response = await request('GET', path);
      if (!response.ok) {
        const body = parseExact(await response.text());
        throw new ApiError(response.status, body.error);
      }
      const blob = await response.blob();
      const link = h('a', { href: URL.createObjectURL(blob), download: name });
      document.body.append(link);
      link.click();
      link.remove();
      say(`${name} downloaded.`);
    });
  }

  async function audit() {
    const params = new URLSearchParams(location.hash.split('?')[1] || '');
    await loading('Audit log', async () => {
      const query = new URLSearchParams();
      for (const name of ['actor', 'action', 'target', 'since', 'until', 'after']) {
        if (params.get(name)) query.set(name, params.get(name));
      }
      query.set('limit', '50');
      const page = await api('GET', `/admin/audit?${query}`);
      const programList = await api('GET', '/program/');
      const alert = alertBox();
      const inputs = {
        actor: h('input', { type: 'text', name: 'actor', value: params.get('actor') || '' }),
        action: h('select', { name: 'action' }, h('option', { value: '' }, 'any action'),
          ACTIONS.map((a) => h('option', { value: a, selected: params.get('action') === a }, a))),
        target: h('input', { type: 'text', name: 'target', value: params.get('target') || '' }),
        since: h('input', { type: 'datetime-local', name: 'since', value: (params.get('since') || '').slice(0, 16) }),
        until: h('input', { type: 'datetime-local', name: 'until', value: (params.get('until') || '').slice(0, 16) }),
      };
      const filters = () => {
        const q = new URLSearchParams();
        for (const [name, input] of Object.entries(inputs)) {
          const value = input.value.trim();
          if (!value) continue;
          q.set(name, name === 'since' || name === 'until' ? `${value}:00Z` : value);
        }
        return q;
      };
      const csv = h('button', { type: 'button', class: 'secondary' }, 'Download the log as CSV');
      csv.addEventListener('click', () => download(csv, alert, `/admin/audit.csv?${filters()}`, 'audit.csv'));
      const program = h('select', { name: 'program_id' }, h('option', { value: '' }, 'every program'),
        programList.map((p) => h('option', { value: p.id }, p.name)));
      const ledger = h('button', { type: 'button', class: 'secondary' }, 'Download the ledger (CSV)');
      ledger.addEventListener('click', () => download(ledger, alert,
        `/admin/export/ledger.csv${program.value ? `?program_id=${program.value}` : ''}`, 'ledger.csv'));
      const credits = h('button', { type: 'button', class: 'secondary' }, 'Download the credits (CSV)');
      credits.addEventListener('click', () => download(credits, alert,
        `/admin/export/credits.csv${program.value ? `?program_id=${program.value}` : ''}`, 'credits.csv'));
      const next = page.next
        ? h('a', { href: `#/audit?${(() => { const q = filters(); q.set('after', page.next); return q; })()}` }, 'Older entries')
        : null;
      show(h('h2', {}, 'Audit log'), alert,
        form({ class: 'fields', role: 'search', 'aria-label': 'Filter the audit log' }, alert, [
          field('Actor', inputs.actor), field('Action', inputs.action), field('Target', inputs.target),
          field('Since (UTC)', inputs.since), field('Until (UTC)', inputs.until),
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'))],
        async () => { location.hash = `#/audit?${filters()}`; }),
        h('div', { class: 'actions' }, csv),
        table(['At', 'Actor', 'Action', 'Target', 'Changes', 'Reason', 'Note', 'Request'],
          page.entries.map((e) => [text(e.at), `${e.actor}${e.role ? ` (${e.role})` : ''}`, e.action,
            text(e.target), h('pre', {}, Object.entries(e.changes).map(([k, [before, after]]) =>
              `${k}: ${text(before)} → ${text(after)}`).join('\n') || '—'),
            text(e.reason), text(e.note), text(e.request_id)])),
        next,
        h('h3', {}, 'Exports for finance'),
        h('div', { class: 'actions' }, field('Program', program), ledger, credits));
    });
  }

  // ---- routing -----------------------------------------------------------------------------

  function route() {
    if (!token()) {
      signIn();
      return;
    }
    nav.hidden = false;
    const hash = location.hash || '#/programs';
    const [path] = hash.slice(1).split('?');
    const parts = path.split('/').filter(Boolean);
    for (const link of nav.querySelectorAll('a')) {
      const current = `#/${parts[0] === 'webhooks' ? 'deliveries' : parts[0]}` === link.getAttribute('href');
      if (current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    switch (parts[0]) {
      case 'programs': return parts[1] ? program(parts[1]) : programs();
      case 'review': return review();
      case 'lookup': return lookup();
      case 'deliveries': return deliveries();
      case 'webhooks': return webhook(parts[1]);
      case 'codes': return codes();
      case 'audit': return audit();
      default: location.hash = '#/programs';
    }
    return undefined;
  }

  document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', route);
  route();
})();
