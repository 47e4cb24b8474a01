/*
 * office.js -- the mobile office page (office.php): a task list read and changed only through
 * RPC to PHP (rpc.php), and kept current by PHP's pushes to the channel office:tasks.
 *
 *   rpc('tasks.list')                     {rev, tasks}: on every open, and once subscribed
 *   rpc('tasks.add', {title})             {rev, task}
 *   rpc('tasks.toggle', {id, done})       {rev, task}
 *   rpc('tasks.delete', {id})             {rev, id}
 *   on('task.added' | 'task.changed')     {rev, task, by}   pushed by PHP after each commit,
 *   on('task.deleted')                    {rev, id, by}     to every page, this one included
 *   A task is {id, title, done, by, done_by, rev}: by added it, done_by completed it (null
 *   while not done); the list shows both.
 *
 * A reply, the push of the same change and a list fetched meanwhile can arrive in any order,
 * so the page orders them by revision (each change takes the list's next one, and each task
 * carries the revision of its last change): a task is replaced only by a newer revision, a
 * deleted id (ids are never reused) stays deleted, and a list at revision R drops the tasks
 * it lacks that the page knew at R or earlier, and ignores pushes of R or earlier for tasks
 * it lacks.
 *
 * The channel is subscribed to with a channel token from token.php (herald_channel_token);
 * when a resubscription is refused (the token expired while the page was open), the page
 * fetches a new one. Every text from the network goes into the DOM with textContent.
 */
(function () {
    'use strict';

    var cfg = Demo.cfg;
    var $ = Demo.$;
    var tasks = new Map();      /* id -> {id, title, done, by, done_by, rev} */
    var gone = new Set();       /* ids deleted */
    var listRev = -1;           /* revision of the last list applied */

    /** One line in the activity list, newest first, at most 20. */
    function note(text) {
        var ul = $('notes');
        var li = document.createElement('li');
        li.textContent = new Date().toLocaleTimeString() + '  ' + text;
        ul.insertBefore(li, ul.firstChild);
        while (ul.children.length > 20) {
            ul.removeChild(ul.lastChild);
        }
    }

    /** What a HeraldError or Error says, for a note. */
    function why(err) {
        return err && err.code ? err.code + ': ' + err.message : String(err && err.message);
    }

    /** Take `task` if it is newer than what the page has; true if it did. */
    function apply(task) {
        if (!task || typeof task.id !== 'number' || gone.has(task.id)) {
            return false;
        }
        var cur = tasks.get(task.id);
        if (cur ? task.rev <= cur.rev : task.rev <= listRev) {
            return false;   /* stale, or deleted before the list the page has */
        }
        tasks.set(task.id, task);
        return true;
    }

    /** Forget task `id` for good. */
    function drop(id) {
        gone.add(id);
        tasks.delete(id);
    }

    /** Take a tasks.list answer {rev, tasks} unless the page already has a newer one. */
    function applyList(list) {
        if (!list || !Array.isArray(list.tasks) || list.rev < listRev) {
            return;
        }
        listRev = list.rev;
        var listed = new Set(list.tasks.map(function (t) { return t.id; }));
        tasks.forEach(function (t, id) {
            if (!listed.has(id) && t.rev <= list.rev) {
                drop(id);
            }
        });
        list.tasks.forEach(function (t) {
            var cur = tasks.get(t.id);
            if (!gone.has(t.id) && (!cur || t.rev > cur.rev)) {
                tasks.set(t.id, t);
            }
        });
    }

    /** "added by ann", and "· done by bob" once bob completed it. */
    function who(t) {
        var added = 'added by ' + t.by;
        return t.done && typeof t.done_by === 'string' ? added + ' \u00b7 done by ' + t.done_by
            : added;
    }

    /** Redraw the list from `tasks`, oldest first. */
    function render() {
        var ul = $('tasks');
        ul.textContent = '';
        var ids = Array.from(tasks.keys()).sort(function (a, b) { return a - b; });
        if (ids.length === 0) {
            var empty = document.createElement('li');
            empty.className = 'empty';
            empty.textContent = listRev < 0 ? 'Loading\u2026' : 'No tasks. Add one above.';
            ul.appendChild(empty);
            return;
        }
        ids.forEach(function (id) {
            var t = tasks.get(id);
            var li = document.createElement('li');
            li.dataset.id = String(id);
            li.className = t.done ? 'done' : '';
            var box = document.createElement('input');
            box.type = 'checkbox';
            box.checked = !!t.done;
            box.setAttribute('aria-label', 'done');
            var title = document.createElement('span');
            title.className = 'title';
            title.textContent = t.title;
            var by = document.createElement('span');
            by.className = 'by';
            by.textContent = who(t);
            var del = document.createElement('button');
            del.type = 'button';
            del.className = 'quiet';
            del.textContent = '\u2715';
            del.setAttribute('aria-label', 'delete');
            li.append(box, title, by, del);
            ul.appendChild(li);
        });
    }

    /** Fetch the whole list again (after a reconnect pushes may have been missed). */
    function refresh() {
        herald.rpc('tasks.list').then(function (list) {
            applyList(list);
            render();
        }, function (err) {
            if (err.code !== 'disconnected') {
                note('Could not load the tasks (' + why(err) + ')');
            }
        });
    }

    /** Subscribe to the channel with a fresh channel token; retry in 5 s on failure. */
    function follow() {
        Demo.getText('token.php?user=' + encodeURIComponent(cfg.user) +
                '&channel=' + encodeURIComponent(cfg.channel))
            .then(function (token) {
                return herald.subscribe(cfg.channel, { token: token });
            })
            .then(refresh, function (err) {
                note('Live updates unavailable (' + why(err) + '); trying again in 5 s');
                setTimeout(follow, 5000);
            });
    }

    /** Call `method` with `data`; apply the answer with `then`, or note the refusal. */
    function call(method, data, then) {
        return herald.rpc(method, data).then(function (reply) {
            then(reply);
            render();
        }, function (err) {
            note('Refused: ' + why(err));
            render();   /* put a checkbox back as the list has it */
        });
    }

    var herald = Demo.connect('add-button', refresh);     /* the list again on every open */

    herald.onError(function (err) {
        note('Herald: ' + why(err));
        if (err.channel === cfg.channel) {
            follow();   /* a refused resubscription: most likely an expired channel token */
        }
    });

    herald.on('task.added', onTask);
    herald.on('task.changed', onTask);

    /** A pushed task.added or task.changed {rev, task, by}. */
    function onTask(data, event, meta) {
        if (meta.channel !== cfg.channel || !data || !apply(data.task)) {
            return;
        }
        render();
        if (data.by !== cfg.user) {
            var verb = event === 'task.added' ? 'added' : data.task.done ? 'completed' : 'reopened';
            note(data.by + ' ' + verb + ' \u201c' + data.task.title + '\u201d');
        }
    }

    herald.on('task.deleted', function (data, event, meta) {
        if (meta.channel !== cfg.channel || !data || typeof data.id !== 'number' ||
                gone.has(data.id)) {
            return;
        }
        var t = tasks.get(data.id);
        drop(data.id);
        render();
        if (t && data.by !== cfg.user) {
            note(data.by + ' deleted \u201c' + t.title + '\u201d');
        }
    });

    $('add').addEventListener('submit', function (e) {
        e.preventDefault();
        var input = $('title');
        var title = input.value.trim();
        if (title === '') {
            return;
        }
        call('tasks.add', { title: title }, function (reply) {
            apply(reply.task);
            if (input.value.trim() === title) {
                input.value = '';
            }
        });
    });

    $('tasks').addEventListener('change', function (e) {
        var li = e.target.closest('li[data-id]');
        if (li && e.target.type === 'checkbox') {
            call('tasks.toggle', { id: Number(li.dataset.id), done: e.target.checked },
                function (reply) { apply(reply.task); });
        }
    });

    $('tasks').addEventListener('click', function (e) {
        var li = e.target.closest('li[data-id]');
        if (li && e.target.tagName === 'BUTTON') {
            call('tasks.delete', { id: Number(li.dataset.id) }, function (reply) {
                drop(reply.id);
            });
        }
    });

    follow();
})();
