// Markdown in assistant replies, sent through the offline bot's `/echo` (its reply is
// exactly the text, in pieces): rendered while it streams (an unclosed fence is already
// code) and the same after a reload; only the streaming message is re-rendered; code and
// messages copy their source; hostile text runs nothing, loads nothing, links nowhere bad.

import assert from 'node:assert/strict';

import { openNewChat, scenario, sel, send, waitAssistant } from '../lib/harness.mjs';

const DOC = [
  '# Release notes',
  '',
  'Some **bold**, some _emphasis_, ~~struck~~ and `inline code`.',
  '',
  '| name | value |',
  '| ---- | ----: |',
  '| a    | 1     |',
  '| b    | 2     |',
  '',
  '- [x] written',
  '- [ ] shipped',
  '',
  '1. one',
  '2. two',
  '',
  '> quoted',
  '',
  'See [the docs](https://example.com/docs) or write to [us](mailto:team@example.com).',
  '',
  '```rust',
  'fn main() {',
  '    println!("<b>hi</b>");',
  '}',
  '```',
].join('\n');

/** The structure of the last assistant message's rendered text. */
function shape(page) {
  return page.$eval(`${sel.assistant}:last-of-type .text`, (t) => ({
    h1: t.querySelector('h1')?.textContent,
    strong: t.querySelector('strong')?.textContent,
    em: t.querySelector('em')?.textContent,
    del: t.querySelector('del')?.textContent,
    code: t.querySelector('p code')?.textContent,
    table: [...t.querySelectorAll('table tr')].map((tr) => [...tr.children].map((c) => c.textContent)),
    tasks: [...t.querySelectorAll('li input[type="checkbox"]')].map((i) => [i.checked, i.disabled]),
    ol: t.querySelectorAll('ol li').length,
    quote: t.querySelector('blockquote')?.textContent.trim(),
    links: [...t.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href'), a.getAttribute('rel')]),
    pre: t.querySelector('pre > code')?.textContent,
    copyButtons: t.querySelectorAll('[data-testid="code-copy"]').length,
    html: t.innerHTML,
  }));
}

scenario('Markdown: GFM renders, code blocks copy, and a reload renders it the same', { server: { delayMs: 2 } }, async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await openNewChat(page);
  await send(page, `/echo ${DOC}`);
  await waitAssistant(page, { status: 'complete' });
  const live = await shape(page);
  assert.equal(live.h1, 'Release notes');
  assert.equal(live.strong, 'bold');
  assert.equal(live.em, 'emphasis');
  assert.equal(live.del, 'struck');
  assert.equal(live.code, 'inline code');
  assert.deepEqual(live.table, [['name', 'value'], ['a', '1'], ['b', '2']]);
  assert.deepEqual(live.tasks, [[true, true], [false, true]]);
  assert.equal(live.ol, 2);
  assert.equal(live.quote, 'quoted');
  assert.deepEqual(live.links, [
    ['the docs', 'https://example.com/docs', 'noopener noreferrer'],
    ['us', 'mailto:team@example.com', 'noopener noreferrer'],
  ]);
  assert.equal(live.pre, 'fn main() {\n    println!("<b>hi</b>");\n}\n');
  assert.equal(live.copyButtons, 1);

  // The user's own text is plain text, exactly as typed.
  const userText = await page.$eval(`${sel.user} .text`, (t) => [t.textContent, t.children.length]);
  assert.deepEqual(userText, [`/echo ${DOC}`, 0]);

  // Copy buttons copy the source: the code of a block, the Markdown of a message.
  await page.locator('[data-testid="code-copy"]').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), live.pre);
  await page.locator(`${sel.assistant} [data-testid="copy"]`).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), DOC);

  await page.reload();
  await waitAssistant(page, { status: 'complete' });
  assert.deepEqual(await shape(page), live, 'the history renders exactly as the stream did');
});

scenario('Markdown while streaming: an unclosed fence is code, only the streaming message re-renders', { server: { delayMs: 8 } }, async ({ page }) => {
  await openNewChat(page);
  await send(page, '/echo first **reply**');
  await waitAssistant(page, { status: 'complete' });

  // Mark every element already on the page; count mutations outside the new reply.
  await page.evaluate(() => {
    window.__old = [...document.querySelectorAll('[data-testid="message"]')];
    window.__outside = 0;
    new MutationObserver((records) => {
      for (const r of records) {
        const el = r.target.nodeType === Node.TEXT_NODE ? r.target.parentElement : r.target;
        const inReply = el.closest('[data-testid="message"]:last-child');
        // The earlier reply's Regenerate button hides once: it is no longer the last.
        const actionShown = r.type === 'attributes' && r.attributeName === 'hidden';
        if (!inReply && el.id !== 'messages' && !actionShown) window.__outside += 1;
      }
    }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true, attributes: true });
  });

  const lines = Array.from({ length: 120 }, (_, i) => `let x${i} = ${i};`);
  await send(page, `/echo Before the code:\n\n\`\`\`js\n${lines.join('\n')}\n\`\`\`\n\nAfter the code.`);
  // Mid-stream, the fence is still open: what has arrived is already a code block.
  await page.waitForFunction(
    (s) => {
      const el = [...document.querySelectorAll(s)].at(-1);
      const code = el?.querySelector('.text pre > code');
      return el?.dataset.status === 'streaming' && code && code.textContent.includes('let x10 = 10;');
    },
    sel.assistant,
    { timeout: 10_000, polling: 20 },
  );
  const mid = await page.$eval(`${sel.assistant}:last-of-type .text`, (t) => ({
    after: t.textContent.includes('After the code.'),
    paragraphs: t.querySelectorAll('p').length,
  }));
  assert.equal(mid.after, false, 'sampled before the fence closed');
  assert.equal(mid.paragraphs, 1, 'the text before the fence is a paragraph');

  await waitAssistant(page, { count: 2, status: 'complete', timeout: 15_000 });
  const end = await page.$eval(`${sel.assistant}:last-of-type .text`, (t) => ({
    code: t.querySelector('pre > code').textContent,
    last: t.lastElementChild.textContent,
  }));
  assert.equal(end.code, `${lines.join('\n')}\n`);
  assert.equal(end.last, 'After the code.');

  const kept = await page.evaluate(() => window.__old.every((el) => el.isConnected));
  assert.ok(kept, 'the earlier messages are the same elements (no re-render of the list)');
  assert.equal(await page.evaluate(() => window.__outside), 0, 'nothing outside the streaming reply changed');
});

const HOSTILE = [
  '<script>window.__pwned = "script"</script>',
  '<img src="/x.png" onerror="window.__pwned = \'img\'">',
  '<svg onload="window.__pwned = \'svg\'"></svg>',
  '[click me](javascript:window.__pwned=\'link\')',
  '[data](data:text/html,<script>alert(1)</script>)',
  '<a href="javascript:window.__pwned=1">raw link</a>',
  '![tracker](http://127.0.0.1:9/pixel.png)',
  '<iframe src="/"></iframe>',
  '[fine](https://example.com/ok "title")',
  '<style>body { display: none }</style>',
].join('\n\n');

scenario('hostile Markdown: nothing runs, nothing loads, only safe links are live', { server: { delayMs: 1 } }, async ({ page }) => {
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await openNewChat(page);
  await send(page, `/echo ${HOSTILE}`);
  await waitAssistant(page, { status: 'complete' });

  const check = async () => {
    const got = await page.$eval(`${sel.assistant} .text`, (t) => ({
      pwned: window.__pwned ?? null,
      elements: [...t.querySelectorAll('script, img, svg, iframe, style, object, embed')].length,
      handlers: [...t.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name)).filter((n) => n.startsWith('on')),
      live: [...t.querySelectorAll('a[href]')].map((a) => [a.getAttribute('href'), a.rel]),
      dead: [...t.querySelectorAll('a:not([href])')].map((a) => a.textContent),
      text: t.textContent,
      visible: getComputedStyle(document.body).display,
    }));
    assert.equal(got.pwned, null, 'no script ran');
    assert.equal(got.elements, 0, 'no active or loading element');
    assert.deepEqual(got.handlers, [], 'no event handler attribute');
    assert.deepEqual(got.live, [
      ['http://127.0.0.1:9/pixel.png', 'noopener noreferrer'],
      ['https://example.com/ok', 'noopener noreferrer'],
    ], 'only http(s) links are live (the image became a link)');
    assert.deepEqual(got.dead, ['click me', 'data']);
    assert.ok(got.text.includes('<script>window.__pwned = "script"</script>'), 'raw HTML is shown as text');
    assert.ok(got.text.includes('<a href="javascript:window.__pwned=1">raw link</a>'));
    assert.equal(got.visible, 'block', 'no style from the text applies');
  };
  await check();
  await page.locator(`${sel.assistant} a`, { hasText: 'click me' }).click();
  assert.equal(await page.evaluate(() => window.__pwned ?? null), null, 'clicking the javascript: link does nothing');

  await page.reload();
  await waitAssistant(page, { status: 'complete' });
  await check();
  assert.ok(!requests.some((u) => u.includes('pixel.png') || u.endsWith('/x.png')), `nothing loaded from the text: ${requests.join(' ')}`);
  // The user's message with the same text is plain text.
  assert.equal(await page.$eval(`${sel.user} .text`, (t) => t.children.length), 0);
});
