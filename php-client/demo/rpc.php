<?php

/*
 * rpc.php -- the mobile office's RPC script: Herald's rpc_script, run by the
 * private php-fpm that run.sh starts (never by the demo's web server, whose
 * router hides it). Every {"op":"rpc"} a browser sends arrives here as one
 * FastCGI request signed by Herald; herald_rpc_request() checks it.
 *
 * Methods (data -> reply), the task list shared by every user:
 *   tasks.list    null                      {rev, tasks: [task...]}
 *   tasks.add     {title}                   {rev, task}
 *   tasks.toggle  {id, done?}               {rev, task}   done: set it; absent: flip it
 *   tasks.delete  {id}                      {rev, id}
 * A task is {id, title, done, by, done_by, rev}: by is the user who added it,
 * done_by the one who marked it done (null while it is not), rev the revision
 * of its last change. Every change takes the next revision of the
 * whole list and, once committed, is pushed to the channel office:tasks
 * (herald_publish_channel) as task.added / task.changed {rev, task, by} or
 * task.deleted {rev, id, by}, so every open page updates; a page compares
 * revisions to order a reply, a push and a reload however they arrive.
 *
 * Errors (herald_rpc_error, the browser's HeraldError code): bad_input 400 (a
 * title that is not 1 to 200 characters without control characters, an id
 * that is not a positive integer, done that is not a boolean), not_found 404,
 * too_many_tasks 409 (500 tasks), no_such_method 404, forbidden 403
 * (anonymous), storage_failed 500 (SQLite; the reason goes to the error log).
 *
 * Environment (the php-fpm pool's env): HERALD_SECRET and HERALD_SOCKET for
 * herald.php, HERALD_DEMO_DB the SQLite file, created with its schema on
 * first use.
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

const OFFICE_TITLE_MAX = 200;
const OFFICE_TASKS_MAX = 500;

/** A refusal for the browser: herald_rpc_error($code, message, $status). */
final class OfficeError extends Exception
{
    public function __construct(public readonly string $errorCode, string $message,
                                public readonly int $status = 400)
    {
        parent::__construct($message);
    }
}

/** The database, with its schema created when missing. */
function office_db(): PDO
{
    $path = getenv('HERALD_DEMO_DB');
    if ($path === false || $path === '') {
        throw new RuntimeException('HERALD_DEMO_DB is not set');
    }
    $db = new PDO('sqlite:' . $path, null, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        PDO::ATTR_TIMEOUT => 5,             /* wait for a writer in another child */
    ]);
    $db->exec('CREATE TABLE IF NOT EXISTS tasks (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: pages keep tombstones
                   title TEXT NOT NULL,
                   done INTEGER NOT NULL DEFAULT 0,
                   created_by TEXT NOT NULL,
                   completed_by TEXT,                      -- who marked it done; NULL if not done
                   rev INTEGER NOT NULL)');
    office_migrate($db);
    $db->exec('CREATE TABLE IF NOT EXISTS revision (
                   id INTEGER PRIMARY KEY CHECK (id = 1),
                   rev INTEGER NOT NULL)');
    $db->exec('INSERT OR IGNORE INTO revision (id, rev) VALUES (1, 0)');
    return $db;
}

/** Add completed_by to a tasks table made before it existed (a kept HERALD_DEMO_DB). */
function office_migrate(PDO $db): void
{
    $columns = array_column($db->query('PRAGMA table_info(tasks)')->fetchAll(), 'name');
    if (!in_array('completed_by', $columns, true)) {
        $db->exec('ALTER TABLE tasks ADD COLUMN completed_by TEXT');
    }
}

/** A task row as the browser sees it. */
function office_task(array $row): array
{
    $doneBy = $row['done'] && $row['completed_by'] !== null ? (string) $row['completed_by'] : null;
    return ['id' => (int) $row['id'], 'title' => (string) $row['title'],
            'done' => (bool) $row['done'], 'by' => (string) $row['created_by'],
            'done_by' => $doneBy, 'rev' => (int) $row['rev']];
}

/** The task $id, or OfficeError not_found. */
function office_find(PDO $db, int $id): array
{
    $q = $db->prepare('SELECT * FROM tasks WHERE id = ?');
    $q->execute([$id]);
    $row = $q->fetch();
    if ($row === false) {
        throw new OfficeError('not_found', "no task $id", 404);
    }
    return $row;
}

/** Run $change($db, $rev) in a write transaction that takes the list's next revision. */
function office_write(PDO $db, callable $change): array
{
    $db->beginTransaction();
    try {
        /* A write first: the lock is taken (or waited for) before anything is read. */
        $db->exec('UPDATE revision SET rev = rev + 1');
        $rev = (int) $db->query('SELECT rev FROM revision')->fetchColumn();
        $result = $change($db, $rev);
        $db->commit();
        return $result;
    } catch (Throwable $e) {
        if ($db->inTransaction()) {
            $db->rollBack();
        }
        throw $e;
    }
}

/** data.title, trimmed and checked. */
function office_title(mixed $data): string
{
    $title = is_array($data) && is_string($data['title'] ?? null) ? trim($data['title']) : '';
    if (!preg_match('/^[^\p{Cc}]{1,' . OFFICE_TITLE_MAX . '}$/u', $title)) {
        throw new OfficeError('bad_input',
            'title must be 1 to ' . OFFICE_TITLE_MAX . ' characters without control characters');
    }
    return $title;
}

/** data.id, checked. */
function office_id(mixed $data): int
{
    $id = is_array($data) ? ($data['id'] ?? null) : null;
    if (!is_int($id) || $id < 1) {
        throw new OfficeError('bad_input', 'id must be a positive integer');
    }
    return $id;
}

/** The whole list at one revision. */
function tasks_list(PDO $db): array
{
    $db->beginTransaction();
    $rev = (int) $db->query('SELECT rev FROM revision')->fetchColumn();
    $rows = $db->query('SELECT * FROM tasks ORDER BY id')->fetchAll();
    $db->commit();
    return [['rev' => $rev, 'tasks' => array_map('office_task', $rows)], null];
}

/** Add a task. */
function tasks_add(PDO $db, mixed $data, string $user): array
{
    $title = office_title($data);
    return office_write($db, function (PDO $db, int $rev) use ($title, $user): array {
        if ((int) $db->query('SELECT count(*) FROM tasks')->fetchColumn() >= OFFICE_TASKS_MAX) {
            throw new OfficeError('too_many_tasks',
                'the list holds ' . OFFICE_TASKS_MAX . ' tasks: delete some first', 409);
        }
        $db->prepare('INSERT INTO tasks (title, created_by, rev) VALUES (?, ?, ?)')
            ->execute([$title, $user, $rev]);
        $task = office_task(office_find($db, (int) $db->lastInsertId()));
        return [['rev' => $rev, 'task' => $task], ['task.added', ['rev' => $rev, 'task' => $task]]];
    });
}

/** Set (data.done) or flip a task's done flag; $user is who completed it. */
function tasks_toggle(PDO $db, mixed $data, string $user): array
{
    $id = office_id($data);
    $done = is_array($data) && array_key_exists('done', $data) ? $data['done'] : null;
    if ($done !== null && !is_bool($done)) {
        throw new OfficeError('bad_input', 'done must be true or false');
    }
    return office_write($db, function (PDO $db, int $rev) use ($id, $done, $user): array {
        $row = office_find($db, $id);
        $done ??= !$row['done'];
        /* Done again keeps who completed it first; reopening forgets it. */
        $doneBy = $done ? ($row['done'] ? ($row['completed_by'] ?? $user) : $user) : null;
        $db->prepare('UPDATE tasks SET done = ?, completed_by = ?, rev = ? WHERE id = ?')
            ->execute([(int) $done, $doneBy, $rev, $id]);
        $task = office_task(office_find($db, $id));
        return [['rev' => $rev, 'task' => $task], ['task.changed', ['rev' => $rev, 'task' => $task]]];
    });
}

/** Delete a task. */
function tasks_delete(PDO $db, mixed $data): array
{
    $id = office_id($data);
    return office_write($db, function (PDO $db, int $rev) use ($id): array {
        office_find($db, $id);
        $db->prepare('DELETE FROM tasks WHERE id = ?')->execute([$id]);
        return [['rev' => $rev, 'id' => $id], ['task.deleted', ['rev' => $rev, 'id' => $id]]];
    });
}

/** Answer one RPC: [reply, push or null] from the method, or an OfficeError. */
function office_call(string $method, mixed $data, string $user): array
{
    $run = match ($method) {
        'tasks.list' => fn (PDO $db) => tasks_list($db),
        'tasks.add' => fn (PDO $db) => tasks_add($db, $data, $user),
        'tasks.toggle' => fn (PDO $db) => tasks_toggle($db, $data, $user),
        'tasks.delete' => fn (PDO $db) => tasks_delete($db, $data),
        default => throw new OfficeError('no_such_method', "unknown method $method", 404),
    };
    try {
        return $run(office_db());
    } catch (RuntimeException $e) {     /* PDOException, or no HERALD_DEMO_DB */
        error_log('demo rpc: ' . $method . ': ' . $e->getMessage());
        throw new OfficeError('storage_failed', 'the task list is not available', 500);
    }
}

$req = herald_rpc_request();
if ($req === null) {
    return;                             /* not from Herald: answered 403 */
}
if ($req['type'] !== 'rpc') {
    herald_rpc_reply(null);             /* hooks (run.sh enables none): nothing to decide */
    return;
}
if (!is_string($req['user'] ?? null)) {
    herald_rpc_error('forbidden', 'anonymous connections cannot use the task list', 403);
    return;
}
try {
    [$reply, $push] = office_call((string) $req['method'], $req['data'] ?? null, $req['user']);
} catch (OfficeError $e) {
    herald_rpc_error($e->errorCode, $e->getMessage(), $e->status);
    return;
}
if ($push !== null) {
    /* After the commit, before the reply: a failure is logged by herald.php, the change stands. */
    herald_publish_channel(DEMO_OFFICE_CHANNEL, $push[0], $push[1] + ['by' => $req['user']]);
}
herald_rpc_reply($reply);
