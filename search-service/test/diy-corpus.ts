import type { PostSnapshot } from '@civildiy/common/contracts';
import { newPost } from './search-service-under-test.ts';

/** A small fixed corpus of DIY posts over several trades, keyed by a short name. */
export function diyCorpus(): Record<string, PostSnapshot> {
  const post = (title: string, tags: string[], body: string) => newPost({ title, tags, body });
  return {
    dovetails: post('Hand-cut dovetail joints for a walnut jewelry box', ['woodworking', 'joinery'], 'Marking gauge, dovetail saw and sharp chisels: cutting through dovetails in walnut, then the glue-up and an oil finish.'),
    shelves: post('Floating oak shelves with hidden brackets', ['woodworking', 'shelves'], 'Drill the wall, fit steel rods, bore matching holes into the oak board and slide the shelf onto the rods.'),
    workbench: post('A workbench from construction lumber', ['woodworking'], 'A sturdy workbench with a laminated top, a leg vise and dog holes, built from framing lumber in a weekend.'),
    tap: post('Fixing a dripping kitchen tap', ['plumbing'], 'Shut off the water under the sink, unscrew the tap handle and replace the worn washer and the O-ring of the tap.'),
    drain: post('Unclogging a bathroom sink drain', ['plumbing'], 'Remove the pop-up stopper, clean the P-trap and push a drain snake through the hair clog.'),
    toilet: post('Replacing a toilet fill valve', ['plumbing'], 'The cistern kept running: swap the fill valve, adjust the float height and check the flapper seal.'),
    dimmer: post('Installing a dimmer switch', ['electrical'], 'Turn off the breaker, test for voltage, connect the line and load wires to the dimmer switch and fit the wall plate.'),
    floodlight: post('Outdoor LED floodlight with a motion sensor', ['electrical', 'outdoor'], 'Run outdoor cable from a junction box, mount the floodlight under the eaves and aim the motion sensor at the driveway.'),
    ceiling: post('Replacing a ceiling light fixture', ['electrical'], 'Support the old fixture, disconnect it, attach the mounting bracket and wire the new pendant light.'),
    raisedBed: post('Raised cedar garden bed', ['garden'], 'Cedar boards and corner posts make a raised bed; fill it with compost and topsoil for vegetables.'),
    irrigation: post('Drip irrigation for tomatoes', ['garden'], 'Drip line, emitters and a timer water the tomato plants at the roots every morning.'),
    compost: post('A compost bin from old pallets', ['garden', 'pallets'], 'Four pallets wired together make a compost bin; turn the compost every two weeks.'),
    cabinets: post('Painting kitchen cabinets', ['painting'], 'Degrease, sand, prime and spray the cabinet doors with enamel paint for a hard finish.'),
    backsplash: post('Tiling a bathroom backsplash', ['tiling'], 'Spread thinset mortar, set the tiles with spacers, cut the edge tiles and grout the backsplash.'),
    attic: post('Insulating an attic with mineral wool', ['insulation'], 'Lay mineral wool batts between the joists, keep the soffit vents clear and wear a mask.'),
  };
}

/** Queries whose best answer in {@link diyCorpus} is known. */
export const RANKING_CASES: readonly [query: string, expected: keyof ReturnType<typeof diyCorpus>][] = [
  ['how do I fix a dripping tap washer', 'tap'],
  ['raised garden bed from cedar boards', 'raisedBed'],
  ['install a dimmer switch on the wall', 'dimmer'],
  ['cutting dovetail joints by hand', 'dovetails'],
  ['unclog a sink drain with a snake', 'drain'],
];
