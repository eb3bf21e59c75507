-- One declared tool call and every action its processes were observed
-- doing, with each action's verdict. A call with no observed action still
-- shows, with the action columns null. Set the call first:
--   SET VARIABLE tool_call = '<call_id>';
-- Run from inside the evidence directory.
SELECT
    t.session_id,
    t.call_id,
    t.tool,
    t.decision,
    t.status,
    e.ts,
    e.pid,
    e.kind,
    coalesce(
        array_to_string(e.argv, ' '),
        coalesce(e.new_path, e.path),
        coalesce(e.dns_name, e.addr) || ':' || e.port,
        e.unix_path,
        e.name
    ) AS what,
    e.verdict,
    e.rule,
    e.error
FROM read_parquet('tool_calls/**/*.parquet') AS t
LEFT JOIN read_parquet('events/**/*.parquet') AS e
    ON e.session_id = t.session_id AND e.tool_call_id = t.call_id
WHERE t.call_id = getvariable('tool_call')
ORDER BY e.ts, e.seq;
