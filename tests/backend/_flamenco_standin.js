// A stand-in for the parts of Flamenco Manager's job-compiler runtime that our job types use, so their
// compile step runs under Node. It implements what Flamenco documents and no more:
//   - https://flamenco.blender.org/usage/job-types/ : a script defines `JOB_TYPE` and `compileJob(job)`;
//     `author.Task(name, type)`, `task.addCommand(author.Command(name, parameters))`, `job.addTask(task)`,
//     `job.settings`; the built-in scripts it refers to also use `task.addDependency(task)`, `print()`,
//     `frameChunker(frames, chunkSize)` and `path.join/dirname/basename`.
//   - frameChunker as Manager implements it: "1-10,20..25,40" (both "-" and ".." notations) is exploded to
//     sorted unique frames, cut into chunks of at most chunkSize frames, each merged back into ranges in
//     "-" notation ("3-8,13,14" style: a two-frame run is written as two frames).
// Usage: node _flamenco_standin.js SCRIPT.js describe            -> JOB_TYPE as JSON
//        node _flamenco_standin.js SCRIPT.js compile SETTINGS_JSON -> {"tasks": [...]} as JSON
// A compile error (a thrown exception) exits with status 3 and the message on stderr.
"use strict";

const fs = require("fs");
const vm = require("vm");
const posix = require("path").posix;

function frameChunker(frameRange, chunkSize) {
    const text = String(frameRange).trim();
    if (!text) throw new Error(`invalid range "${frameRange}": empty range`);
    if (!(chunkSize >= 1)) throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    const frames = new Set();
    for (const part of text.replace(/\.\./g, "-").split(",")) {
        const ends = part.split("-");
        const nums = ends.map((s) => {
            const t = s.trim();
            if (!/^-?\d+$/.test(t)) throw new Error(`invalid range "${frameRange}": ${part}`);
            return parseInt(t, 10);
        });
        if (nums.length === 1) frames.add(nums[0]);
        else if (nums.length === 2) for (let f = nums[0]; f <= nums[1]; f++) frames.add(f);
        else throw new Error(`invalid range "${frameRange}": ${part}`);
    }
    const list = Array.from(frames).sort((a, b) => a - b);
    if (list.length === 0) throw new Error(`invalid range "${frameRange}": empty range`);
    const chunks = [];
    for (let i = 0; i < list.length; i += chunkSize) chunks.push(merge(list.slice(i, i + chunkSize)));
    return chunks;
}

function merge(frames) {
    const ranges = [];
    const append = (from, to) => {
        if (from === to) ranges.push(String(from));
        else if (from + 1 === to) ranges.push(String(from), String(to));
        else ranges.push(`${from}-${to}`);
    };
    let start = frames[0];
    let prev = frames[0];
    for (const f of frames.slice(1)) {
        if (f > prev + 1) {
            append(start, prev);
            start = f;
        }
        prev = f;
    }
    append(start, prev);
    return ranges.join(",");
}

class Task {
    constructor(name, type) {
        this.name = name;
        this.type = type;
        this.commands = [];
        this.dependencies = [];
    }
    addCommand(command) { this.commands.push(command); }
    addDependency(task) { this.dependencies.push(task); }
}

const author = {
    Task: (name, type) => new Task(name, type),
    Command: (name, parameters) => ({ name, parameters }),
};

function load(scriptPath) {
    const logs = [];
    const context = vm.createContext({
        author, frameChunker, print: (...a) => logs.push(a.join(" ")),
        path: { join: posix.join, dirname: posix.dirname, basename: posix.basename },
    });
    // `const` at the top level stays in the script's scope: evaluate JOB_TYPE through the same script.
    vm.runInContext(fs.readFileSync(scriptPath, "utf8") + "\n;globalThis.__jobType = JOB_TYPE;", context,
                    { filename: scriptPath });
    return { context, logs };
}

function main(argv) {
    const [scriptPath, mode, settingsJson] = argv;
    const { context, logs } = load(scriptPath);
    if (mode === "describe") {
        process.stdout.write(JSON.stringify(context.__jobType));
        return 0;
    }
    const tasks = [];
    const job = { name: "test job", settings: JSON.parse(settingsJson), addTask: (t) => tasks.push(t) };
    try {
        context.compileJob(job);
    } catch (err) {
        process.stderr.write(String(err && err.message ? err.message : err));
        return 3;
    }
    const index = new Map(tasks.map((t, i) => [t, i]));
    process.stdout.write(JSON.stringify({
        log: logs,
        tasks: tasks.map((t) => ({ name: t.name, type: t.type, commands: t.commands,
                                   dependencies: t.dependencies.map((d) => index.has(d) ? index.get(d) : -1) })),
    }));
    return 0;
}

process.exitCode = main(process.argv.slice(2));
