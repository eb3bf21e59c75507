-- Actions that no declared tool call and no baseline covered, with the
-- alert each one raised. No rows means every observed action was declared.
-- Run from inside the evidence directory.
SELECT
    e.ts,
    e.agent,
    e.session_id,
    e.tool_call_id,
    e.pid,
    e.exe,
    e.kind,
    coalesce(
        array_to_string(e.argv, ' '),
        coalesce(e.new_path, e.path),
        coalesce(e.dns_name, e.addr) || ':' || e.port,
        e.unix_path,
        e.name
    ) AS what,
    e.rule,
    a.severity,
    a.message
FROM read_parquet('events/**/*.parquet') AS e
LEFT JOIN read_parquet('alerts/**/*.parquet') AS a
    ON a.session_id IS NOT DISTINCT FROM e.session_id AND a.event_seq = e.seq
WHERE e.verdict = 'undeclared'
ORDER BY e.ts, e.seq;
