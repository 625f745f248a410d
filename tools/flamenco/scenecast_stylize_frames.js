// Flamenco job type: stylize a shot with Scenecast, split into chunks of frames over the farm's workers.
//
// Each task runs examples/stylize_frames.py headless on one chunk (`--start A --end B`). Every chunk uses
// the same seed and the same depth range (the scene's whole frame range, or the one given here), so
// frames agree across machines; each chunk's first frame is generated fresh. A re-queued task continues at
// its first missing frame. An optional last task joins the frames into a video with FFmpeg.
//
// Install: copy this file into the `scripts/` folder next to the flamenco-manager executable and restart
// the Manager; define a two-way variable `scenecast` (the Scenecast checkout or unpacked extension source
// on each platform) in flamenco-manager.yaml. See docs/flamenco.md. No Flamenco Manager ran where this was
// written: the compile step is tested under Node with a stand-in of the documented `author` API.

const JOB_TYPE = {
    label: "Scenecast Stylize Frames",
    description: "Stylize a frame range with Scenecast (diffusion + ControlNet), in chunks of frames per worker",
    settings: [
        // Artist settings.
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frames to stylize, e.g. '1-48' or '1-24, 40-48'" },
        { key: "chunk_size", type: "int32", default: 8, visible: "submission",
          description: "Frames per task; within a chunk each frame builds on the one before" },
        { key: "out", type: "string", subtype: "dir_path", required: true, default: "//scenecast_frames",
          visible: "submission", description: "Output folder (// = next to the .blend)" },
        { key: "prompt", type: "string", default: "", visible: "submission",
          description: "Prompt; empty: the scene's Scenecast prompt" },
        { key: "negative", type: "string", default: "", visible: "submission", description: "Negative prompt" },
        { key: "seed", type: "int32", default: -1, visible: "submission",
          description: "One seed for every frame; -1: the scene's" },
        { key: "steps", type: "int32", default: 0, visible: "submission", description: "Denoising steps; 0: default" },
        { key: "model", type: "string", default: "", visible: "submission", description: "Base model; empty: default" },
        { key: "server", type: "string", default: "", visible: "submission",
          description: "Scenecast backend URL; empty: the add-on preference on each worker" },
        { key: "depth_near", type: "float", default: 0.0, visible: "submission",
          description: "Depth range near; with far > near it replaces the range from the scene's bounds" },
        { key: "depth_far", type: "float", default: 0.0, visible: "submission", description: "Depth range far" },
        { key: "no_consistency", type: "bool", default: false, visible: "submission",
          description: "Every frame independent (same seed) instead of building on the previous frame" },
        { key: "video", type: "bool", default: false, visible: "submission",
          description: "Also join the frames into an MP4 once every chunk is done" },

        // Filled in by the Flamenco add-on or the Manager's configuration.
        { key: "blendfile", type: "string", required: true, visible: "web", description: "Path of the .blend" },
        { key: "scene", type: "string", eval: "C.scene.name", visible: "web", description: "Scene to stylize" },
        { key: "fps", type: "float", eval: "C.scene.render.fps / C.scene.render.fps_base", visible: "hidden" },
        { key: "script", type: "string", default: "{scenecast}/examples/stylize_frames.py", visible: "web",
          description: "stylize_frames.py on the workers ({scenecast}: a Manager variable)" },
    ],
};

function compileJob(job) {
    print("Scenecast Stylize Frames job submitted");
    const settings = job.settings;
    const out = absoluteOut(settings.out, settings.blendfile);
    const renderTasks = [];
    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        const task = author.Task(`stylize-${chunk}`, "blender");
        for (const range of chunkRanges(chunk)) {
            task.addCommand(author.Command("blender-render", {
                exe: "{blender}",
                exeArgs: "{blenderArgs}",
                argsBefore: [],
                blendfile: settings.blendfile,
                args: ["--python", settings.script, "--"]
                    .concat(["--start", String(range[0]), "--end", String(range[1]), "--out", out])
                    .concat(scriptOptions(settings)),
            }));
        }
        job.addTask(task);
        renderTasks.push(task);
    }
    if (settings.video) {
        const videoTask = author.Task("video", "ffmpeg");
        videoTask.addCommand(author.Command("frames-to-video", {
            exe: "ffmpeg",
            fps: settings.fps,
            inputGlob: path.join(out, "frame_*.png"),
            outputFile: path.join(out, "scenecast_frames.mp4"),
            args: ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18"],
        }));
        for (const task of renderTasks) {
            videoTask.addDependency(task);
        }
        job.addTask(videoTask);
    }
}

// "1-8" -> [[1, 8]]; "3-8,13,15-17" (a chunk of a gappy range) -> [[3, 8], [13, 13], [15, 17]].
function chunkRanges(chunk) {
    return chunk.split(",").map((part) => {
        const ends = part.trim().split("-").map((s) => parseInt(s, 10));
        return [ends[0], ends[ends.length - 1]];
    });
}

// The options stylize_frames.py takes, from the job's settings; empty settings leave the scene's own.
function scriptOptions(settings) {
    const args = [];
    if (settings.scene) args.push("--scene", settings.scene);
    if (settings.prompt) args.push("--prompt", settings.prompt);
    if (settings.negative) args.push("--negative", settings.negative);
    if (settings.seed >= 0) args.push("--seed", String(settings.seed));
    if (settings.steps > 0) args.push("--steps", String(settings.steps));
    if (settings.model) args.push("--model", settings.model);
    if (settings.server) args.push("--server", settings.server);
    if (settings.depth_far > settings.depth_near && settings.depth_near > 0) {
        args.push("--depth-range", String(settings.depth_near), String(settings.depth_far));
    }
    if (settings.no_consistency) args.push("--no-consistency");
    return args;
}

// "//frames" is relative to the .blend; the FFmpeg task and every worker need the same absolute folder.
function absoluteOut(out, blendfile) {
    if (out.startsWith("//")) {
        return path.join(path.dirname(blendfile), out.substring(2));
    }
    return out;
}
