/*
 * notify.js -- the notifications page (index.php): every notification this user's
 * connection receives, newest first, with its event name, data, id and arrival time, and a
 * form that asks PHP (publish.php) to publish one.
 *
 *   on('*')                 {event, data, id}: a publish to this user (herald_publish) or
 *                           to everyone (herald_broadcast, which carries no id)
 *   POST publish.php        to, text, and broadcast=1 for herald_broadcast(); answers
 *                           {delivered: N} or {error}
 *
 * Every text from the network goes into the DOM with textContent, never as HTML.
 */
(function () {
    'use strict';

    var $ = Demo.$;
    var MAX_SHOWN = 100;
    var received = 0;

    /** One element `tag` of class `cls` holding `text`. */
    function el(tag, cls, text) {
        var e = document.createElement(tag);
        e.className = cls;
        e.textContent = text;
        return e;
    }

    /** Show one notification at the top of the list (at most MAX_SHOWN kept). */
    function show(data, event, meta) {
        var ul = $('received');
        var empty = ul.querySelector('.empty');
        if (empty) {
            ul.removeChild(empty);
        }
        var li = document.createElement('li');
        li.dataset.event = event;
        li.dataset.id = meta.id || '';
        var head = document.createElement('div');
        head.className = 'head';
        head.append(el('span', 'event', event),
            el('span', 'id', meta.id ? 'id ' + meta.id : 'no id (broadcast)'),
            el('time', 'time', new Date().toLocaleTimeString()));
        li.append(head, el('pre', 'data', JSON.stringify(data, null, 1).replace(/\n\s*/g, ' ')));
        ul.insertBefore(li, ul.firstChild);
        while (ul.children.length > MAX_SHOWN) {
            ul.removeChild(ul.lastChild);
        }
        received += 1;
        $('count').textContent = String(received);
    }

    /** Say what the last publish did, under the form. */
    function sent(text, failed) {
        var p = $('sent');
        p.textContent = text;
        p.className = failed ? 'sent failed' : 'sent';
    }

    var herald = Demo.connect(null);
    herald.on('*', function (data, event, meta) {
        if (meta.channel === undefined) {
            show(data, event, meta);    /* this page joins no channel: user and broadcast only */
        }
    });

    $('send').addEventListener('submit', function (e) {
        e.preventDefault();
        var body = new URLSearchParams();
        var broadcast = e.submitter && e.submitter.value === 'broadcast';
        body.set('text', $('text').value);
        if (broadcast) {
            body.set('broadcast', '1');
        } else {
            body.set('to', $('to').value.trim());
        }
        var target = broadcast ? 'everyone' : 'user ' + body.get('to');
        fetch('publish.php', { method: 'POST', body: body, cache: 'no-store' })
            .then(function (r) {
                return r.json();
            })
            .then(function (answer) {
                if (typeof answer.delivered === 'number') {
                    sent('Published to ' + target + ': delivered to ' + answer.delivered +
                        (answer.delivered === 1 ? ' tab.' : ' tabs.'), false);
                } else {
                    sent('Not published: ' + String(answer.error), true);
                }
            }, function (err) {
                sent('Not published: ' + err.message, true);
            });
    });
})();
