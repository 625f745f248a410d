// Flamenco job type: texture a batch of objects with Scenecast, split into objects over the farm's workers.
//
// Each task runs examples/texture_objects.py headless on a few objects (`--objects A B`): multi-view
// texturing from each object's own rig of views, writing <out>/<object>.png and <object>.json. The .blend
// is never saved, so tasks run side by side on one file; a re-queued task skips objects already done.
//
// Install: copy this file into the `scripts/` folder next to the flamenco-manager executable and restart
// the Manager; define a two-way variable `scenecast` in flamenco-manager.yaml. See docs/flamenco.md. No
// Flamenco Manager ran where this was written: the compile step is tested under Node with a stand-in of
// the documented `author` API.

const JOB_TYPE = {
    label: "Scenecast Texture Objects",
    description: "Multi-view Scenecast textures for a batch of objects, a few objects per worker",
    settings: [
        // Artist settings.
        { key: "objects", type: "string", required: true,
          eval: "','.join(o.name for o in C.selected_objects if o.type == 'MESH')",
          evalInfo: { showLinkButton: true, description: "Selected mesh objects" },
          description: "Mesh objects to texture, separated by commas" },
        { key: "objects_per_task", type: "int32", default: 1, visible: "submission",
          description: "Objects one task textures, one after the other" },
        { key: "out", type: "string", subtype: "dir_path", required: true, default: "//scenecast_textures",
          visible: "submission", description: "Output folder (// = next to the .blend)" },
        { key: "prompt", type: "string", required: true, visible: "submission", description: "What the textures show" },
        { key: "negative", type: "string", default: "", visible: "submission", description: "Negative prompt" },
        { key: "seed", type: "int32", default: -1, visible: "submission", description: "One seed for every object; -1: the scene's" },
        { key: "views", type: "int32", default: 6, visible: "submission", description: "Rig views around each object" },
        { key: "size", type: "int32", default: 0, visible: "submission", description: "View size in pixels; 0: the scene's" },
        { key: "texture_size", type: "int32", default: 1024, visible: "submission", description: "Texels per side" },
        { key: "steps", type: "int32", default: 0, visible: "submission", description: "Denoising steps; 0: default" },
        { key: "model", type: "string", default: "", visible: "submission", description: "Base model; empty: default" },
        { key: "server", type: "string", default: "", visible: "submission",
          description: "Scenecast backend URL; empty: the add-on preference on each worker" },

        // Filled in by the Flamenco add-on or the Manager's configuration.
        { key: "blendfile", type: "string", required: true, visible: "web", description: "Path of the .blend" },
        { key: "scene", type: "string", eval: "C.scene.name", visible: "web", description: "Scene holding the objects" },
        { key: "script", type: "string", default: "{scenecast}/examples/texture_objects.py", visible: "web",
          description: "texture_objects.py on the workers ({scenecast}: a Manager variable)" },
    ],
};

function compileJob(job) {
    print("Scenecast Texture Objects job submitted");
    const settings = job.settings;
    const names = objectNames(settings.objects);
    if (names.length === 0) {
        throw "no objects to texture: select mesh objects or list their names, separated by commas";
    }
    const perTask = settings.objects_per_task > 0 ? settings.objects_per_task : 1;
    const out = absoluteOut(settings.out, settings.blendfile);
    for (let i = 0; i < names.length; i += perTask) {
        const batch = names.slice(i, i + perTask);
        const task = author.Task(`texture-${batch.join("+")}`, "blender");
        task.addCommand(author.Command("blender-render", {
            exe: "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: [],
            blendfile: settings.blendfile,
            args: ["--python", settings.script, "--", "--objects"].concat(batch)
                .concat(["--out", out, "--prompt", settings.prompt])
                .concat(scriptOptions(settings)),
        }));
        job.addTask(task);
    }
}

// "Car, Building.L1,,Lamp" -> ["Car", "Building.L1", "Lamp"]; duplicates once, in the order given.
function objectNames(text) {
    const seen = {};
    const names = [];
    for (const part of String(text || "").split(",")) {
        const name = part.trim();
        if (name && !seen[name]) {
            seen[name] = true;
            names.push(name);
        }
    }
    return names;
}

function scriptOptions(settings) {
    const args = [];
    if (settings.scene) args.push("--scene", settings.scene);
    if (settings.negative) args.push("--negative", settings.negative);
    if (settings.seed >= 0) args.push("--seed", String(settings.seed));
    if (settings.views > 0) args.push("--views", String(settings.views));
    if (settings.size > 0) args.push("--size", String(settings.size));
    if (settings.texture_size > 0) args.push("--texture-size", String(settings.texture_size));
    if (settings.steps > 0) args.push("--steps", String(settings.steps));
    if (settings.model) args.push("--model", settings.model);
    if (settings.server) args.push("--server", settings.server);
    return args;
}

function absoluteOut(out, blendfile) {
    if (out.startsWith("//")) {
        return path.join(path.dirname(blendfile), out.substring(2));
    }
    return out;
}
