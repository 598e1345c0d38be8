import { runService } from '@civildiy/common/runtime';
import { postsService } from './service.ts';

await runService(postsService);
