import { runService } from '@civildiy/common/runtime';
import { searchService } from './service.ts';

await runService(searchService);
