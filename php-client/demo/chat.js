/*
 * chat.js -- the team chat page (chat.php): join one room channel, show who is here, and
 * exchange messages between browsers through Herald alone (no PHP per message).
 *
 *   subscribe(room)         the answer lists the members; onPresence adds and removes them
 *                           (Herald sends one join per user, so a user's second tab is silent)
 *   publish(room, {text})   event "chat"; Herald adds "from", the sender's verified user id,
 *                           which is the only name shown: the text cannot claim to be someone
 *   on('chat')              every member gets each message, the sender too (echo), and the
 *                           page renders only what comes back, so all members see one order
 *
 * Every text from the network is put in the DOM with textContent, never as HTML.
 */
(function () {
    'use strict';

    var cfg = Demo.cfg;
    var $ = Demo.$;
    var messages = $('messages');

    /** Append a line to the message list and keep the newest in view. */
    function addLine(li) {
        var atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
        messages.appendChild(li);
        if (atBottom) {
            messages.scrollTop = messages.scrollHeight;
        }
    }

    /** A message from user `from` (Herald's stamp). */
    function addMessage(from, text) {
        var li = document.createElement('li');
        if (from === cfg.user) {
            li.className = 'mine';
        }
        var time = document.createElement('time');
        time.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
        var who = document.createElement('span');
        who.className = 'who';
        who.textContent = from;
        var body = document.createElement('span');
        body.textContent = text;
        li.append(time, who, body);
        addLine(li);
    }

    /** A line about the room itself (joins, leaves, errors). */
    function addNote(text) {
        var li = document.createElement('li');
        li.className = 'system';
        li.textContent = text;
        addLine(li);
    }

    /** Redraw the member list from herald.members(), sorted, the user marked. */
    function renderMembers() {
        var list = herald.members(cfg.channel).map(function (m) { return m.user; }).sort();
        var ul = $('members');
        ul.textContent = '';
        list.forEach(function (user) {
            var li = document.createElement('li');
            li.textContent = user === cfg.user ? user + ' (you)' : user;
            if (user === cfg.user) {
                li.className = 'me';
            }
            ul.appendChild(li);
        });
        $('count').textContent = String(list.length);
    }

    var herald = Demo.connect('send-button');

    herald.onPresence(function (kind, channel, member) {
        if (channel !== cfg.channel) {
            return;
        }
        renderMembers();
        if (member.user !== cfg.user) {
            addNote(member.user + (kind === 'join' ? ' joined' : ' left'));
        }
    });

    herald.on('chat', function (data, event, meta) {
        if (meta.channel !== cfg.channel || typeof meta.from !== 'string' ||
                !data || typeof data.text !== 'string') {
            return;     /* not this room's, or not a chat message this page knows */
        }
        addMessage(meta.from, data.text);
    });

    herald.onError(function (err) {
        addNote('Herald: ' + err.code + ': ' + err.message);
    });

    herald.subscribe(cfg.channel).then(function () {
        renderMembers();
        addNote('You joined ' + cfg.room + '.');
    }, function (err) {
        addNote('Could not join ' + cfg.room + ': ' + err.code + ': ' + err.message);
    });

    $('send').addEventListener('submit', function (e) {
        e.preventDefault();
        var input = $('text');
        var text = input.value.trim();
        if (text === '') {
            return;
        }
        herald.publish(cfg.channel, { text: text }, { event: 'chat' }).then(function () {
            if (input.value.trim() === text) {
                input.value = '';
            }
        }, function (err) {
            addNote('Not sent (' + err.code + '): ' + err.message);
        });
        input.focus();
    });
})();
